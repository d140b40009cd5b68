package api

import "net/http"

// The OpenAPI 3.0 description of the control API. It is written out by hand, apart from
// the route table in New, so that a test comparing the two catches a route added to one
// and forgotten in the other.

type object = map[string]any

func ref(name string) object { return object{"$ref": "#/components/schemas/" + name} }

func jsonContent(schema object) object {
	return object{"application/json": object{"schema": schema}}
}

func resp(desc string, schema object) object {
	r := object{"description": desc}
	if schema != nil {
		r["content"] = jsonContent(schema)
	}
	return r
}

func errResp(desc string) object { return resp(desc, ref("Error")) }

// limited adds the answer every route gives to an address blocked for failing
// authentication.
func limited(r object) object {
	r["429"] = object{"description": "Too many failed authentications from this address.", "headers": object{"Retry-After": object{"schema": object{"type": "integer"}}}, "content": jsonContent(ref("Error"))}
	return r
}

// Responses every authenticated route can give.
func authResponses(r object) object {
	r["401"] = object{"description": "No bearer token.", "headers": object{"WWW-Authenticate": object{"schema": object{"type": "string"}}}, "content": jsonContent(ref("Error"))}
	r["403"] = errResp("Unknown token, or a token without access to this route.")
	return limited(r)
}

func pathParams(names ...string) []any {
	var ps []any
	for _, n := range names {
		ps = append(ps, object{"name": n, "in": "path", "required": true, "schema": object{"type": "string"}})
	}
	return ps
}

func op(summary string, security bool, params []any, responses object) object {
	o := object{"summary": summary, "responses": limited(responses)}
	if !security {
		o["security"] = []any{}
	}
	if params != nil {
		o["parameters"] = params
	}
	return o
}

// openAPIDocument returns the document; paths use the route table's syntax.
func openAPIDocument() object {
	scaleParams := pathParams("app", "dep")
	paths := object{
		"/-/healthz": object{"get": op("Liveness of the control port.", false, nil, object{
			"200": object{"description": "The text \"success\".", "content": object{"text/plain": object{"schema": object{"type": "string"}}}},
		})},
		"/metrics": object{"get": op("Prometheus metrics.", false, nil, object{
			"200": object{"description": "Prometheus text format.", "content": object{"text/plain": object{"schema": object{"type": "string"}}}},
		})},
		"/api/openapi.json": object{"get": op("This document.", false, nil, object{
			"200": resp("OpenAPI 3.0 document.", object{"type": "object"}),
		})},
		"/api/serve/applications/": object{
			"put": func() object {
				o := op("Deploy a config in Ray Serve's schema (admin). Applications missing from it are deleted.", true, nil, authResponses(object{
					"200": object{"description": "Deployed; the body is empty."},
					"400": errResp("Invalid config; every error, one per line."),
					"413": errResp("Config larger than 8 MiB."),
				}))
				o["requestBody"] = object{"required": true, "content": object{
					"application/json": object{"schema": ref("DeployConfig")},
					"application/yaml": object{"schema": ref("DeployConfig")},
				}}
				return o
			}(),
			"get": op("Ray's ServeInstanceDetails (admin).", true, nil, authResponses(object{
				"200": resp("Every application, its deployments and live replicas.", ref("ServeInstanceDetails")),
			})),
			"delete": op("Delete every application (admin).", true, nil, authResponses(object{
				"200": object{"description": "Deleting; the body is empty."},
			})),
		},
		"/api/v1/applications/{app}/deployments/{dep}/scale": object{
			"post": func() object {
				o := op("Set a deployment's target replica count (admin or the application's token). Asynchronous and idempotent; every call to an existing deployment is audited.", true, scaleParams, authResponses(object{
					"200": resp("Accepted.", ref("ScaleResponse")),
					"400": errResp("Invalid request body, or a target above replica_limit."),
					"404": errResp("Application or Deployment not found."),
					"412": errResp("external_scaler_enabled is false, or the application is being deleted."),
					"413": errResp("Body larger than 64 KiB."),
					"415": errResp("Content-Type is not application/json."),
				}))
				o["requestBody"] = object{"required": true, "content": jsonContent(ref("ScaleRequest"))}
				return o
			}(),
			"get": op("A deployment's scale and its last 100 audit entries (admin or the application's token).", true, scaleParams, authResponses(object{
				"200": resp("Current scale.", ref("ScaleInfo")),
				"404": errResp("Application or Deployment not found."),
			})),
		},
		"/api/v1/applications/{app}/token": object{"get": op("An application's token (admin).", true, pathParams("app"), authResponses(object{
			"200": resp("The token.", ref("Token")),
			"404": errResp("Unknown application, or external_scaler_enabled is false."),
		}))},
		"/api/v1/applications/{app}/token/rotate": object{"post": op("Replace an application's token (admin); the old one stops working at once.", true, pathParams("app"), authResponses(object{
			"200": resp("The new token.", ref("Token")),
			"404": errResp("Unknown application, or external_scaler_enabled is false."),
		}))},
		"/api/v1/shutdown": object{"post": op("Stop shoal gracefully, keeping its state (admin).", true, nil, authResponses(object{
			"202": resp("Stopping.", object{"type": "object", "properties": object{"message": object{"type": "string"}}}),
			"501": errResp("This server cannot be stopped through the API."),
		}))},
		"/api/v1/applications/{app}/deployments/{dep}/replicas/{replica}/logs": object{"get": func() object {
			o := op("The last lines of a replica's log (admin).", true, nil, authResponses(object{
				"200": object{"description": "Log lines.", "content": object{"text/plain": object{"schema": object{"type": "string"}}}},
				"400": errResp("Invalid path component or lines."),
				"404": errResp("No log for this replica."),
			}))
			o["parameters"] = append(pathParams("app", "dep", "replica"), object{
				"name": "lines", "in": "query", "schema": object{"type": "integer", "minimum": 1, "maximum": maxLogLines, "default": defaultLogLines},
			})
			return o
		}()},
	}

	str := object{"type": "string"}
	integer := object{"type": "integer"}
	nonNeg := object{"type": "integer", "minimum": 0}
	schemas := object{
		"Error": object{"type": "object", "required": []any{"error"}, "properties": object{"error": str}},
		"ScaleRequest": object{"type": "object", "additionalProperties": false, "required": []any{"target_num_replicas"},
			"properties": object{"target_num_replicas": nonNeg}},
		"ScaleResponse": object{"type": "object", "properties": object{
			"message": str, "application": str, "deployment": str,
			"target_num_replicas": nonNeg, "previous_target_num_replicas": nonNeg,
		}},
		"AuditEntry": object{"type": "object", "properties": object{
			"time": object{"type": "string", "format": "date-time"}, "application": str, "deployment": str,
			"from": integer, "to": integer, "token": str, "client": str, "source": str, "result": str, "status": integer,
		}},
		"ScaleInfo": object{"type": "object", "properties": object{
			"application": str, "deployment": str, "target_num_replicas": nonNeg, "running_replicas": nonNeg,
			"status": str, "message": str,
			"mode":          object{"type": "string", "enum": []any{"external", "autoscaling", "fixed"}},
			"replica_limit": integer, "target_source": object{"type": "string", "enum": []any{"config", "webhook", "autoscaler"}},
			"audit":       object{"type": "array", "items": ref("AuditEntry")},
			"audit_error": object{"type": "string", "description": "Set, with audit empty, when the audit log could not be read; the scale is still current."},
		}},
		"Token": object{"type": "object", "properties": object{"token": str, "id": str}},
		"DeployConfig": object{"type": "object", "description": "Ray Serve's ServeDeploySchema plus shoal's runtime fields (command, env, working_dir, health_check_path, replica_limit).",
			"required": []any{"applications"}, "properties": object{
				"http_options": object{"type": "object"},
				"applications": object{"type": "array", "items": object{"type": "object"}},
			}},
		"ServeInstanceDetails": object{"type": "object", "description": "Ray Serve's ServeInstanceDetails; replicas carry ongoing_requests too.",
			"properties": object{
				"controller_info": object{"type": "object"}, "proxy_location": str,
				"http_options": object{"type": "object"}, "grpc_options": object{"type": "object"},
				"proxies": object{"type": "object"}, "deploy_mode": str,
				"applications":    object{"type": "object", "additionalProperties": object{"type": "object"}},
				"target_capacity": object{"type": "number", "nullable": true},
			}},
	}

	return object{
		"openapi": "3.0.3",
		"info": object{
			"title":       "shoal control API",
			"version":     "1",
			"description": "Errors are {\"error\": \"...\"}. Authenticate with Authorization: Bearer <token>: the admin token can call every route, an application token only the scale routes of its application.",
		},
		"paths":      paths,
		"security":   []any{object{"bearer": []any{}}},
		"components": object{"schemas": schemas, "securitySchemes": object{"bearer": object{"type": "http", "scheme": "bearer"}}},
	}
}

func (a *API) openAPI(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, openAPIDocument())
	return nil
}
