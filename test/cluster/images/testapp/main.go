// Command testapp is the test cluster's workload image: one static binary that serves what a test
// asks about the pod it runs in, and fetches URLs from inside it.
//
//	testapp                 serve HTTP on $PORT (8080)
//	testapp get <url>       print the body of a GET (exit 1 unless 2xx): for kubectl exec
//
// Endpoints: /healthz, /whoami (uid, gid, groups, hostname), /mounts (this process's mountinfo),
// /file?path=<p> (a file's content), /token-claims (the mounted ServiceAccount token's claims, never
// the token), /api-identity (who the API server says the token is), /fetch?url=<u> (a GET from here).
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if len(os.Args) == 3 && os.Args[1] == "get" {
		body, status, err := get(os.Args[2])
		if err != nil || status/100 != 2 {
			fmt.Fprintln(os.Stderr, "testapp get:", status, err)
			os.Exit(1)
		}
		os.Stdout.Write(body)
		return
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/whoami", whoami)
	mux.HandleFunc("/mounts", func(w http.ResponseWriter, _ *http.Request) { serveFile(w, "/proc/self/mountinfo") })
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) { serveFile(w, r.URL.Query().Get("path")) })
	mux.HandleFunc("/token-claims", tokenClaims)
	mux.HandleFunc("/api-identity", apiIdentity)
	mux.HandleFunc("/fetch", func(w http.ResponseWriter, r *http.Request) {
		body, status, err := get(r.URL.Query().Get("url"))
		writeJSON(w, map[string]any{"status": status, "body": string(body), "error": errText(err)})
	})
	srv := &http.Server{Addr: net.JoinHostPort("", port), Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintln(os.Stderr, srv.ListenAndServe())
	os.Exit(1)
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func get(url string) ([]byte, int, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return body, resp.StatusCode, err
}

func whoami(w http.ResponseWriter, _ *http.Request) {
	host, _ := os.Hostname()
	groups, _ := os.Getgroups()
	writeJSON(w, map[string]any{"uid": os.Getuid(), "gid": os.Getgid(), "groups": groups, "hostname": host})
}

func serveFile(w http.ResponseWriter, path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Write(b)
}

// tokenClaims decodes the mounted token's payload (claims are not secret; the token is).
func tokenClaims(w http.ResponseWriter, _ *http.Request) {
	raw, err := os.ReadFile(saDir + "/token")
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	parts := strings.Split(strings.TrimSpace(string(raw)), ".")
	if len(parts) != 3 {
		http.Error(w, "not a JWT", http.StatusInternalServerError)
		return
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(payload)
}

// apiIdentity asks the API server, through the kubernetes Service and with the mounted token and CA,
// who the token is (a SelfSubjectReview).
func apiIdentity(w http.ResponseWriter, _ *http.Request) {
	token, err1 := os.ReadFile(saDir + "/token")
	ca, err2 := os.ReadFile(saDir + "/ca.crt")
	if err1 != nil || err2 != nil {
		http.Error(w, fmt.Sprint(err1, err2), http.StatusNotFound)
		return
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := "https://" + net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")) +
		"/apis/authentication.k8s.io/v1/selfsubjectreviews"
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)))
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		writeJSON(w, map[string]any{"error": err.Error()})
		return
	}
	defer resp.Body.Close()
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&review)
	writeJSON(w, map[string]any{"status": resp.StatusCode, "username": review.Status.UserInfo.Username,
		"groups": review.Status.UserInfo.Groups, "server": url})
}
