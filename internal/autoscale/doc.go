// Package autoscale decides a deployment's replica count from the requests it is
// handling, as Ray Serve's autoscaling_config does, with delays in wall-clock time.
package autoscale
