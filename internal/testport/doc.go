// Package testport hands tests loopback TCP ports for servers they start in another
// process.
//
// Asking the kernel for port 0 and closing the listener gives a port from the
// ephemeral range, which the kernel hands out again at once: to an outgoing
// connection, or to a replica that shoal starts for another test running alongside.
// The server the port was meant for then fails with "address already in use". Ports
// from here lie below the ephemeral range, where nothing is handed out unasked, and
// are never handed out twice by one test process.
package testport
