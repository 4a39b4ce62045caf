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
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Client calls a daemon over its control socket. It speaks the HTTP/1.1
// subset the control API uses, written and read directly on the unix
// socket, without net/http: one connection per call ("Connection: close"),
// a POST with a JSON body of known length, and an answer whose 1xx
// responses ("102 Processing") are signs of life, then one final response
// with a Content-Length body, a chunked body (streaming methods) or a body
// that ends with the connection. net/http's package init (its HTTP/2
// bundle, crypto/tls, x509) and its transport's goroutines cost a short-
// lived client such as the front binary about half a millisecond of every
// command; the daemon's side is net/http's server, unchanged, so any HTTP
// client (older snapfs binaries included) still talks to it.
type Client struct {
	sock string
	// answer bounds the wait for a sign of life (SetAnswerTimeout); 0:
	// no bound.
	answer time.Duration
}

// NewClient returns a client of the control socket at sock. It does not
// connect until the first call.
func NewClient(sock string) *Client { return &Client{sock: sock} }

// Socket is the socket's path.
func (c *Client) Socket() string { return c.sock }

// Close releases the client's resources. A call holds its connection only
// until its answer is read (or its Response closed): there is nothing idle.
func (c *Client) Close() {}

// SetAnswerTimeout bounds the wait for the daemon's first sign of life
// after each request (AnswerTimeout; package hot's calls) and makes a call
// without one an *Unanswered. A client without it waits as long as the
// daemon takes (package service's: it probed the daemon first, and long
// jobs of a daemon older than the 102 would look hung).
func (c *Client) SetAnswerTimeout(d time.Duration) { c.answer = d }

// Response is a daemon's final answer to a call.
type Response struct {
	StatusCode int    // 200
	Status     string // "200 OK"
	// Header holds the answer's header fields, by lower-case name (several
	// fields of one name joined with ", ").
	Header map[string]string
	// Body is the answer's body; closing it closes the connection.
	Body io.ReadCloser
}

// Post sends a request; it returns the response when its status is 200
// (close its body), an *Error when the daemon answered with one, an
// *Unanswered (with SetAnswerTimeout) when the daemon took the connection
// but no byte of an answer came within the bound or before ctx ended, or
// another error; that error wraps ErrNoAnswer when no connection was made.
func (c *Client) Post(ctx context.Context, method string, req any) (*Response, error) {
	if !validMethod(method) {
		return nil, fmt.Errorf("control %q: not a method name", method)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("control %s: %w", method, err)
	}
	start := time.Now()
	d := net.Dialer{Timeout: 2 * time.Second}
	conn, err := d.DialContext(ctx, "unix", c.sock)
	if err != nil {
		if ctx.Err() != nil { // interrupted, not "no daemon": never try another way
			return nil, c.failed(ctx, method, ctx.Err(), false, false, start)
		}
		return nil, fmt.Errorf("daemon at %s: %w", c.sock, noAnswer{err})
	}
	// ctx ending closes the connection: a write or read blocked on it
	// returns at once (and the daemon sees the disconnection: a streaming
	// job is cancelled).
	var ended atomic.Bool
	stop := context.AfterFunc(ctx, func() { ended.Store(true); conn.Close() })
	fail := func(err error, sent bool) error {
		stop()
		conn.Close()
		timedOut := !ended.Load() && errors.Is(err, os.ErrDeadlineExceeded)
		return c.failed(ctx, method, err, sent, timedOut, start)
	}
	if c.answer > 0 {
		_ = conn.SetDeadline(start.Add(c.answer))
	}
	msg := make([]byte, 0, 160+len(method)+len(body))
	msg = append(msg, "POST /v1/"...)
	msg = append(msg, method...)
	msg = append(msg, " HTTP/1.1\r\nHost: snapfs\r\nUser-Agent: snapfs\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "...)
	msg = strconv.AppendInt(msg, int64(len(body)), 10)
	msg = append(msg, "\r\n\r\n"...)
	msg = append(msg, body...)
	if _, err := conn.Write(msg); err != nil {
		return nil, fail(err, false)
	}
	br := bufio.NewReaderSize(conn, 4096)
	if _, err := br.Peek(1); err != nil { // any byte of an answer is a sign of life
		return nil, fail(err, true)
	}
	if c.answer > 0 {
		_ = conn.SetDeadline(time.Time{}) // the daemon is alive: no bound on the operation
	}
	res, err := readResponse(br)
	if err != nil {
		return nil, fail(err, true)
	}
	res.Body = &connBody{r: res.Body, conn: conn, stop: stop}
	if res.StatusCode == 200 {
		return res, nil
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	var we Error
	if json.Unmarshal(data, &we) != nil || we.Message == "" {
		return nil, fmt.Errorf("daemon at %s: %s: %s", c.sock, method, res.Status)
	}
	return nil, &we
}

// validMethod: a method is a Service method's name, written as is in the
// request line (never a space, CR or LF that would change the request).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// failed is the error of a call that got no answer: err is the transport's.
// With a bound (SetAnswerTimeout), one that timed out or whose ctx ended is
// *Unanswered; without one, ctx's end is ctx's error.
func (c *Client) failed(ctx context.Context, method string, err error, sent, timedOut bool, start time.Time) error {
	if ce := ctx.Err(); ce != nil && !timedOut {
		err = ce // the transport's error is then that of the connection closed for it
	}
	if c.answer > 0 && (timedOut || ctx.Err() != nil) {
		return &Unanswered{Sock: c.sock, Method: method, Sent: sent, Timeout: timedOut, After: time.Since(start), Err: err}
	}
	return fmt.Errorf("daemon at %s: %s: %w", c.sock, method, err)
}

// Call makes a call and returns the raw JSON result.
func (c *Client) Call(ctx context.Context, method string, req any) (json.RawMessage, error) {
	res, err := c.Post(ctx, method, req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, fmt.Errorf("daemon at %s: read answer to %s: %w", c.sock, method, err)
	}
	return bytes.TrimSpace(data), nil
}

// connBody is an answer's body: closing it closes the call's connection.
type connBody struct {
	r    io.Reader
	conn net.Conn
	stop func() bool
	once sync.Once
}

func (b *connBody) Read(p []byte) (int, error) { return b.r.Read(p) }

func (b *connBody) Close() error {
	b.once.Do(func() {
		b.stop()
		b.conn.Close()
	})
	return nil
}

// errMalformed marks an answer that is not the HTTP/1.1 the daemon speaks.
var errMalformed = errors.New("malformed HTTP answer")

// readResponse reads a final response's status line and header, skipping
// informational (1xx) responses, and returns it with its body reader.
func readResponse(br *bufio.Reader) (*Response, error) {
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		proto, rest, _ := strings.Cut(line, " ")
		code, reason, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(code)
		if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 || err != nil || n < 100 {
			return nil, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		hdr := map[string]string{}
		for {
			l, err := readLine(br)
			if err != nil {
				return nil, err
			}
			if l == "" {
				break
			}
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				return nil, fmt.Errorf("%w: header line %q", errMalformed, l)
			}
			k, v = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(v)
			if old, ok := hdr[k]; ok {
				v = old + ", " + v
			}
			hdr[k] = v
		}
		if n < 200 && n != 101 {
			continue // 100 Continue, 102 Processing, 103: the final answer follows
		}
		res := &Response{StatusCode: n, Status: strings.TrimSpace(code + " " + reason), Header: hdr}
		switch te, cl := hdr["transfer-encoding"], hdr["content-length"]; {
		case n == 204 || n == 304:
			res.Body = io.NopCloser(strings.NewReader(""))
		case te != "":
			if !strings.EqualFold(te, "chunked") {
				return nil, fmt.Errorf("%w: transfer encoding %q", errMalformed, te)
			}
			res.Body = io.NopCloser(&chunkedReader{r: br})
		case cl != "":
			size, err := strconv.ParseInt(cl, 10, 64)
			if err != nil || size < 0 {
				return nil, fmt.Errorf("%w: content length %q", errMalformed, cl)
			}
			res.Body = io.NopCloser(&sizedReader{r: br, n: size})
		default:
			res.Body = io.NopCloser(br) // until the daemon closes the connection
		}
		return res, nil
	}
}

// maxLine bounds a status, header or chunk-size line.
const maxLine = 16 << 10

// readLine reads a line ending in "\n" (or "\r\n") without its end.
func readLine(br *bufio.Reader) (string, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > maxLine {
			return "", fmt.Errorf("%w: line longer than %d bytes", errMalformed, maxLine)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return "", io.ErrUnexpectedEOF // the answer ended before its header did
		}
		if err != nil {
			return "", err
		}
		return strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"), nil
	}
}

// sizedReader is a Content-Length body: an end before n bytes is an error.
type sizedReader struct {
	r *bufio.Reader
	n int64
}

func (s *sizedReader) Read(p []byte) (int, error) {
	if s.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.n {
		p = p[:s.n]
	}
	k, err := s.r.Read(p)
	s.n -= int64(k)
	if err == io.EOF && s.n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return k, err
}

// chunkedReader decodes a chunked body (RFC 9112 section 7.1).
type chunkedReader struct {
	r   *bufio.Reader
	n   int64 // bytes left in the current chunk
	err error // sticky: io.EOF after the last chunk and the trailer
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	for c.err == nil && c.n == 0 {
		line, err := readLine(c.r)
		if err != nil {
			c.err = err
			break
		}
		size, _, _ := strings.Cut(line, ";") // chunk extensions: ignored
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
		if err != nil || n < 0 {
			c.err = fmt.Errorf("%w: chunk size %q", errMalformed, line)
			break
		}
		if n == 0 {
			for { // the trailer, up to its empty line
				l, err := readLine(c.r)
				if err != nil {
					c.err = err
					break
				}
				if l == "" {
					c.err = io.EOF
					break
				}
			}
			break
		}
		c.n = n
	}
	if c.n == 0 {
		return 0, c.err
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	k, err := c.r.Read(p)
	c.n -= int64(k)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err == nil && c.n == 0 {
		// The chunk's data ends with CRLF.
		if l, lerr := readLine(c.r); lerr != nil {
			c.err = lerr
		} else if l != "" {
			c.err = fmt.Errorf("%w: chunk not followed by CRLF", errMalformed)
		}
	}
	if err != nil {
		c.err = err
	}
	return k, err
}
