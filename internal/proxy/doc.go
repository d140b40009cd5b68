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
//   - The common request (HTTP/1.x, no upgrade, no 100-continue, a body of known size up
//     to 64 KiB) is served directly (direct.go, h1.go): its head is written straight
//     from the inbound request onto a pooled keep-alive connection of the replica (up to
//     1024 idle per replica, checked with a non-blocking peek before reuse), and the
//     response is read and copied back in the handler's goroutine. This skips
//     httputil.ReverseProxy's request clone and header copies and http.Transport's two
//     goroutine hand-offs: about a third of the allocations and CPU per request.
//     Everything else (WebSocket upgrades, chunked uploads, HTTP/2 clients) goes through
//     httputil.ReverseProxy and a tuned http.Transport, with pooled per-request state
//     and 32 KiB buffers.
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
