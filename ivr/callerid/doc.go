// Package callerid identifies callers: it turns the number a call arrives
// with into E.164 (Normalize), looks it up in a local directory loaded from
// CSV (Directory) and, when configured, in a CRM over HTTP (CRM). Identifier
// combines the two and never fails a call: a caller it cannot identify goes
// on unidentified.
package callerid
