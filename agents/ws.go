package agents

import (
	"context"
	"net/http"

	"github.com/coder/websocket"
)

// WSHandler serves the agent signalling WebSocket (GET /api/v1/agent/ws).
// identify returns the logged-in agent of the request (false: the route's
// authorization should already have refused it); originOK checks that a
// browser request comes from ivrd's own pages.
func (h *Hub) WSHandler(identify func(*http.Request) (Identity, bool), originOK func(*http.Request) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, ok := identify(r)
		if !ok {
			http.Error(w, `{"error":"log in first"}`, http.StatusUnauthorized)
			return
		}
		if !originOK(r) {
			http.Error(w, `{"error":"cross-origin WebSocket refused"}`, http.StatusForbidden)
			return
		}
		// The Origin was checked above (and a missing Origin means a
		// program, not a browser): accept it here.
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return // Accept has answered the request
		}
		c.SetReadLimit(maxMessage)
		h.Serve(r.Context(), &wsConn{c: c}, id)
	})
}

// wsConn adapts a WebSocket to Conn.
type wsConn struct{ c *websocket.Conn }

func (w *wsConn) Read(ctx context.Context) ([]byte, error) {
	for {
		typ, data, err := w.c.Read(ctx)
		if err != nil {
			return nil, err
		}
		if typ == websocket.MessageText {
			return data, nil
		}
		// Binary frames are not part of the protocol.
		if err := w.c.Write(ctx, websocket.MessageText, []byte(`{"type":"error","message":"binary frames are not part of the protocol"}`)); err != nil {
			return nil, err
		}
	}
}

func (w *wsConn) Write(ctx context.Context, data []byte) error {
	return w.c.Write(ctx, websocket.MessageText, data)
}

func (w *wsConn) Close(reason string) {
	code := websocket.StatusNormalClosure
	if reason != "" {
		code = websocket.StatusGoingAway
	}
	if err := w.c.Close(code, reason); err != nil {
		w.c.CloseNow()
	}
}
