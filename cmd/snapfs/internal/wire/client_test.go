package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// daemonLike answers as service.Handler does: 102 as soon as the request is
// read, then 200 with a JSON result (or an error status with {"code",
// "message"}), or, for "Stream", JSON lines flushed one by one (a chunked
// body). It echoes the request's method, content type and body.
func daemonLike(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.WriteHeader(http.StatusProcessing)
	method := strings.TrimPrefix(r.URL.Path, "/v1/")
	switch method {
	case "Fail":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		_ = json.NewEncoder(w).Encode(Error{Code: "exists", Message: `already exists: snapshot "s"`})
	case "Stream":
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.WriteHeader(http.StatusOK)
		for i := 0; i < 3; i++ {
			fmt.Fprintf(w, "{\"event\":%d}\n", i)
			w.(http.Flusher).Flush()
			time.Sleep(10 * time.Millisecond)
		}
		fmt.Fprintf(w, "{\"result\":%q}\n", strings.Repeat("x", 10000))
	case "Big":
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(strings.Repeat("y", 100000)) // larger than the server's buffer: chunked
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"method": method, "content_type": r.Header.Get("Content-Type"),
			"body": string(body), "proto": r.Proto, "connection": r.Header.Get("Connection")})
	}
}

// TestClientSpeaksToNetHTTP: the light client's HTTP/1.1 against net/http's
// server (the daemon's): a request net/http reads as the old client's, the
// 102 skipped, bodies of known length, chunked and streamed, error answers;
// and an old client (net/http's, as snapfs binaries before this one used)
// gets the same answers from the same server.
func TestClientSpeaksToNetHTTP(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "d.sock")
	c := serveHTTP(t, sock, daemonLike)
	c.SetAnswerTimeout(2 * time.Second)
	ctx := context.Background()
	old := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer old.CloseIdleConnections()
	oldCall := func(method, body string) (int, []byte) {
		res, err := old.Post("http://snapfs/v1/"+method, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		return res.StatusCode, bytes.TrimSpace(b)
	}

	raw, err := c.Call(ctx, "CreateSnapshotWith", CreateSnapshotRequest{Name: "s", Disks: []string{"d"}})
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	if got["method"] != "CreateSnapshotWith" || got["content_type"] != "application/json" || got["proto"] != "HTTP/1.1" ||
		got["body"] != `{"name":"s","disks":["d"]}` || got["connection"] != "close" {
		t.Fatalf("the daemon read %v", got)
	}
	if _, b := oldCall("CreateSnapshotWith", `{"name":"s","disks":["d"]}`); !bytes.Contains(b, []byte(`"method":"CreateSnapshotWith"`)) {
		t.Fatalf("old client: %s", b)
	}

	if _, err := c.Call(ctx, "Status HTTP/1.1\r\nX: y", struct{}{}); err == nil || errors.Is(err, ErrNoAnswer) {
		t.Fatalf("a method with a CRLF: %v, want an error before anything is sent", err)
	}

	raw, err = c.Call(ctx, "Big", struct{}{})
	if err != nil || string(raw) != `"`+strings.Repeat("y", 100000)+`"` {
		t.Fatalf("chunked answer: %d bytes, %v", len(raw), err)
	}
	if code, b := oldCall("Big", "{}"); code != 200 || !bytes.Equal(b, raw) {
		t.Fatalf("old client, chunked answer: %d, %d bytes", code, len(b))
	}

	_, err = c.Call(ctx, "Fail", struct{}{})
	var we *Error
	if !errors.As(err, &we) || we.Code != "exists" || ExitOf(err) != 4 {
		t.Fatalf("error answer: %v", err)
	}
	if code, b := oldCall("Fail", "{}"); code != 409 || !bytes.Contains(b, []byte(`"code":"exists"`)) {
		t.Fatalf("old client, error answer: %d %s", code, b)
	}

	// A streaming answer: each line as it is flushed, then the end.
	res, err := c.Post(ctx, "Stream", struct{}{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Header["content-type"] != "application/x-ndjson" || res.Header["transfer-encoding"] != "chunked" {
		t.Fatalf("stream header: %v", res.Header)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	res.Body.Close()
	if sc.Err() != nil || len(lines) != 4 || lines[0] != `{"event":0}` || lines[2] != `{"event":2}` || len(lines[3]) != 10000+len(`{"result":""}`) {
		t.Fatalf("stream: %d lines, %v", len(lines), sc.Err())
	}
}

// TestClientCancelCloses: cancelling a call's context while the daemon
// works closes the connection (the daemon sees it: a streaming job is
// cancelled), and the call returns at once.
func TestClientCancelCloses(t *testing.T) {
	dir := t.TempDir()
	gone := make(chan struct{})
	c := serveHTTP(t, filepath.Join(dir, "d.sock"), func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusProcessing)
		select {
		case <-r.Context().Done():
			close(gone)
		case <-time.After(10 * time.Second):
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	_, err := c.Call(ctx, "Sync", struct{}{})
	if !errors.Is(err, context.Canceled) || time.Since(start) > 5*time.Second {
		t.Fatalf("cancelled call: %v after %v", err, time.Since(start))
	}
	select {
	case <-gone:
	case <-time.After(5 * time.Second):
		t.Fatal("the daemon did not see the client go")
	}
}

// TestReadResponse: answers as a daemon may write them, and broken ones,
// which are errors (never a panic, never a wrong body).
func TestReadResponse(t *testing.T) {
	for _, tc := range []struct {
		in, body string
		status   int
		bad      bool
	}{
		{in: "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", body: "{}", status: 200},
		{in: "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", body: "{}", status: 200},
		{in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n1;x=y\r\nd\r\n0\r\nT: 1\r\n\r\n", body: "abcd", status: 200},
		{in: "HTTP/1.1 200 OK\n\nuntil the end", body: "until the end", status: 200},
		{in: "HTTP/1.0 409 Conflict\r\ncontent-length: 0\r\n\r\n", status: 409},
		{in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n{}", bad: true},
		{in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX", bad: true},
		{in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", bad: true},
		{in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", bad: true},
		{in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", bad: true},
		{in: "SSH-2.0-OpenSSH\r\n\r\n", bad: true},
		{in: "HTTP/1.1 200", bad: true},
		{in: "", bad: true},
	} {
		body, status, err := readAll(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: read %q, want an error", tc.in, body)
			}
			continue
		}
		if err != nil || body != tc.body || status != tc.status {
			t.Errorf("%q: %d %q %v, want %d %q", tc.in, status, body, err, tc.status, tc.body)
		}
	}
}

func readAll(in string) (string, int, error) {
	res, err := readResponse(bufio.NewReaderSize(strings.NewReader(in), 16))
	if err != nil {
		return "", 0, err
	}
	b, err := io.ReadAll(res.Body)
	return string(b), res.StatusCode, err
}

// FuzzReadResponse: any bytes from a socket are read without a panic or
// an endless loop; a chunked body always decodes to what was encoded.
func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), []byte("data"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"), []byte{})
	f.Fuzz(func(t *testing.T, in, data []byte) {
		_, _, _ = readAll(string(in))
		var enc bytes.Buffer
		enc.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		for rest := data; len(rest) > 0; {
			n := min(len(rest), 1+int(rest[0])%7)
			fmt.Fprintf(&enc, "%x\r\n%s\r\n", n, rest[:n])
			rest = rest[n:]
		}
		enc.WriteString("0\r\n\r\n")
		body, _, err := readAll(enc.String())
		if err != nil || body != string(data) {
			t.Fatalf("chunked %q: %q, %v", data, body, err)
		}
	})
}
