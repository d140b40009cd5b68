// Package api serves shoal's control REST API: the scale webhook, Ray Serve's REST API,
// tokens, replica logs and the OpenAPI document, behind bearer-token authentication.
package api
