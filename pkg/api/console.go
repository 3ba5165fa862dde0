package api

import "time"

// ServerConsole answers POST /v1/servers/:id/console: a browser console to the
// server's screen that opens once, before ExpiresAt (60 s).
type ServerConsole struct {
	// URL opens the noVNC client served by the server's host, connected to
	// the console; the token in it works once.
	URL string `json:"url"`
	// WebSocketURL is the console itself for other clients: RFB (VNC) in
	// binary WebSocket messages, with the same single-use token.
	WebSocketURL string `json:"websocket_url"`
	// Protocol is "vnc". No VNC password is used: the display listens only on
	// the host's loopback and the token is the credential.
	Protocol  string    `json:"protocol"`
	ExpiresAt time.Time `json:"expires_at"`
}
