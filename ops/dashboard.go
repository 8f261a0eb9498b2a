package ops

import (
	"embed"
	"io/fs"
	"net/http"
)

// The dashboard is plain HTML, CSS and JavaScript, embedded so that the
// edge stays one binary with nothing to build or deploy beside it.
//
//go:embed dashboard
var dashboardFiles embed.FS

// dashboardCSP lets the page load and fetch only from the edge itself;
// blob: media is for recordings, which are fetched with the admin token
// and played from memory because an <audio> element cannot send it.
const dashboardCSP = "default-src 'self'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self'; media-src 'self' blob:; object-src 'none'; frame-ancestors 'none'; " +
	"base-uri 'none'; form-action 'none'"

// registerDashboard serves the dashboard at /dashboard/. The page itself
// holds no data and needs no token: every figure on it comes from the
// admin API, which does.
func registerDashboard(mux *http.ServeMux) {
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic("ops: embedded dashboard missing: " + err.Error())
	}
	files := http.StripPrefix("/dashboard/", http.FileServerFS(sub))
	mux.Handle("GET /dashboard/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", dashboardCSP)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		// The page must follow the edge's version, not a cached one.
		hd.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
	mux.Handle("GET /dashboard", http.RedirectHandler("/dashboard/", http.StatusMovedPermanently))
}
