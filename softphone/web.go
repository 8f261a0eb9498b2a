package softphone

import (
	"embed"
	"io/fs"
	"net/http"
)

// The page is plain HTML, CSS and JavaScript, embedded so that the edge
// is one binary with nothing to build or deploy beside it.
//
//go:embed web
var webFiles embed.FS

// Handler serves the page at /softphone/ and its socket at
// /softphone/ws.
func (h *Hub) Handler() http.Handler {
	sub, err := fs.Sub(webFiles, "web")
	if err != nil {
		panic("softphone: embedded page missing: " + err.Error())
	}
	files := http.StripPrefix("/softphone/", http.FileServerFS(sub))
	mux := http.NewServeMux()
	mux.HandleFunc("GET /softphone/ws", h.serveWS)
	mux.Handle("GET /softphone/", securityHeaders(files))
	mux.Handle("GET /softphone", http.RedirectHandler("/softphone/", http.StatusMovedPermanently))
	return mux
}

// securityHeaders keep the page from being framed, sniffed or made to
// load anything but its own files.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		// ws: and wss: are named for the page's own host: not every
		// browser counts them as 'self'.
		hd.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws://"+r.Host+" wss://"+r.Host+
			"; media-src 'self' blob: mediastream:; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Permissions-Policy", "microphone=(self), camera=(), geolocation=()")
		// The page must follow the edge's version, not a cached one.
		hd.Set("Cache-Control", "no-cache")
		next.ServeHTTP(w, r)
	})
}
