// Package proxy routes application traffic to replicas: longest route_prefix match,
// power-of-two-choices balancing under a hard max_ongoing_requests cap, a bounded FIFO
// queue per deployment, retries of requests no replica has seen, and the loopback-only
// handle endpoint through which replicas call other deployments.
//
// Design choices:
//   - The routing table is immutable and swapped atomically on every snapshot; requests
//     never take a lock to route. Balancers (with their queues) and per-replica counters
//     are carried across snapshots by deployment key and replica ID.
//   - A slot on a replica is claimed by a compare-and-swap below the cap, so a replica
//     never holds more than max_ongoing_requests from this proxy. A freed slot or a new
//     replica is handed to the oldest waiter only (no thundering herd); newcomers do not
//     overtake queued requests.
//   - The common request is served by the proxy's own HTTP/1.1 server loop (serve.go,
//     listener.go), not net/http: a goroutine per client connection parses the head in
//     place without allocating, claims a slot, writes the rewritten head and the body
//     (known size up to 64 KiB) to a pooled keep-alive connection of the replica (up to
//     1024 idle per replica; a liveness peek before reuse unless the request can be
//     resent), and relays the response bytes as they come, following their framing
//     (Content-Length, chunked with trailers, or until close, re-framed as chunked) and
//     flushing whenever the replica has nothing more buffered: one write for a small
//     answer, a flush per chunk for a stream. Pipelined requests are answered in order.
//     No per-request Request, header map, context or background-read goroutine: the
//     client is watched for a hang-up, and the response head for request_timeout_s, by
//     one sweep per listener every 20 ms, which starts a watch goroutine only for a
//     request still waiting. This halves the proxy's CPU per request (bench/proxy).
//   - Anything else is handed, at a request boundary with the bytes already read, to
//     net/http on the same connection, which then serves it to its end: WebSocket
//     upgrades, Expect: 100-continue, chunked uploads, big heads, escaped paths, the
//     proxy's own /-/ paths and the webhook, malformed requests (net/http answers 400),
//     TLS, and a request that would have to queue (net/http's request context follows
//     the client while it waits). There the handler path applies: a small HTTP/1.1
//     client of the proxy's own (direct.go, h1.go) for the common case, and
//     httputil.ReverseProxy with a tuned http.Transport, pooled per-request state and
//     32 KiB buffers for the rest.
//   - A request is retried on another replica (up to 3 in all) only when no replica can
//     have seen it: the connection could not be made (refused, unreachable), and the
//     replica is skipped for a second; a request that met a reused keep-alive connection
//     closed under it is resent on a new one when nothing of it could be written (or, if
//     bodiless and idempotent, nothing came back), as http.Transport does. Any other
//     failure may come after the replica acted on the request (nginx and net/http decide
//     alike), so that request alone gets 502, or 504 when no response header came within
//     request_timeout_s.
//   - Streams (no Content-Length, or text/event-stream) are flushed on every write;
//     bodies of known length go through the buffer. Request bodies are streamed, never
//     buffered. WebSocket upgrades pass through and hold their slot while open.
package proxy
