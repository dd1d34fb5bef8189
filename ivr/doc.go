// Package ivr runs IVR flows: YAML files of nodes (play, menu, collect,
// lookup, branch, set, queue, hangup) that greet a caller, find out who is
// calling, ask what they want and hand them to a queue. ParseFlow and
// Validate reject a bad flow at start with the file, line and key of every
// mistake; a Runner then walks one call through the flow over a Channel to
// the call's media. docs/flows.md describes the file format.
package ivr
