// Package web is ivrd's HTTP side: the JSON API under /api/v1, /healthz
// and /metrics. Every API route names the role it needs; until accounts
// exist (the softphone release) the Authorizer in use lets everyone in and
// ivrd says so at start.
package web
