package api

import (
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"shoal/internal/backend"
	"shoal/internal/config"
	"shoal/internal/controller"
)

// maxConfigBody bounds a config sent to PUT /api/serve/applications/.
const maxConfigBody = 8 << 20

// putApplications deploys a config in Ray's schema. The body is JSON (YAML is accepted
// too: the config parser reads both through one YAML-node decoder, so errors carry
// their paths). Ray answers a bad config with a text 400; shoal keeps the API's JSON
// error shape, one error per line in "error".
func (a *API) putApplications(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxConfigBody+1))
	if err != nil {
		return errorf(http.StatusBadRequest, "reading the request body: %v", err)
	}
	if len(body) > maxConfigBody {
		return errorf(http.StatusRequestEntityTooLarge, "config is larger than %d bytes", maxConfigBody)
	}
	backend := a.opts.ConfigBackend
	if backend == "" {
		backend = config.BackendProcess
	}
	// Parsed over the deployed config: a deployment that names no working_dir keeps the
	// one it runs in, which `shoal start FILE` may have taken from the file's directory.
	// Against BaseDir alone, the same config sent here would be a new version, with every
	// replica restarted and every webhook target reset.
	cfg, warnings, err := config.ParseOver(body, "request body", a.opts.BaseDir, backend, a.intents.Snapshot().Config)
	if err != nil {
		return errorf(http.StatusBadRequest, "%s", err.Error())
	}
	for _, wn := range warnings {
		a.log.Warn("config warning", "warning", wn.String())
	}
	if err := a.intents.Deploy(r.Context(), cfg); err != nil {
		return fmt.Errorf("deploying: %w", err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (a *API) deleteApplications(w http.ResponseWriter, r *http.Request) error {
	if err := a.intents.DeleteAll(r.Context()); err != nil {
		return fmt.Errorf("deleting every application: %w", err)
	}
	w.WriteHeader(http.StatusOK)
	return nil
}

func (a *API) getApplications(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, a.instanceDetails(a.intents.Snapshot()))
	return nil
}

// The GET /api/serve/applications/ shape: Ray's ServeInstanceDetails
// (python/ray/serve/schema.py), with shoal's additions marked.

type instanceDetails struct {
	ControllerInfo actorDetails                   `json:"controller_info"`
	ProxyLocation  string                         `json:"proxy_location"`
	HTTPOptions    httpOptions                    `json:"http_options"`
	GRPCOptions    grpcOptions                    `json:"grpc_options"`
	Proxies        map[string]any                 `json:"proxies"`
	DeployMode     string                         `json:"deploy_mode"`
	Applications   map[string]*applicationDetails `json:"applications"`
	TargetCapacity *float64                       `json:"target_capacity"`
}

// actorDetails is Ray's ServeActorDetails.
type actorDetails struct {
	NodeID         *string `json:"node_id"`
	NodeIP         *string `json:"node_ip"`
	NodeInstanceID *string `json:"node_instance_id"`
	ActorID        *string `json:"actor_id"`
	ActorName      *string `json:"actor_name"`
	WorkerID       *string `json:"worker_id"`
	LogFilePath    *string `json:"log_file_path"`
}

// httpOptions is Ray's HTTPOptionsSchema.
type httpOptions struct {
	Host              string   `json:"host"`
	Port              int      `json:"port"`
	RootPath          string   `json:"root_path"`
	RequestTimeoutS   *float64 `json:"request_timeout_s"`
	KeepAliveTimeoutS float64  `json:"keep_alive_timeout_s"`
	SSLKeyfile        *string  `json:"ssl_keyfile"`
	SSLCertfile       *string  `json:"ssl_certfile"`
}

// grpcOptions is Ray's gRPCOptionsSchema with its defaults; shoal serves no gRPC.
type grpcOptions struct {
	Port                  int      `json:"port"`
	GRPCServicerFunctions []string `json:"grpc_servicer_functions"`
	RequestTimeoutS       *float64 `json:"request_timeout_s"`
}

type applicationDetails struct {
	Name                  string                        `json:"name"`
	RoutePrefix           string                        `json:"route_prefix"`
	DocsPath              *string                       `json:"docs_path"`
	Status                controller.AppStatus          `json:"status"`
	Message               string                        `json:"message"`
	LastDeployedTimeS     float64                       `json:"last_deployed_time_s"`
	DeployedAppConfig     *config.Application           `json:"deployed_app_config"`
	Source                string                        `json:"source"`
	Deployments           map[string]*deploymentDetails `json:"deployments"`
	ExternalScalerEnabled bool                          `json:"external_scaler_enabled"`
}

type deploymentDetails struct {
	Name              string                      `json:"name"`
	Status            controller.DeploymentStatus `json:"status"`
	StatusTrigger     string                      `json:"status_trigger"`
	Message           string                      `json:"message"`
	DeploymentConfig  config.Deployment           `json:"deployment_config"`
	TargetNumReplicas int                         `json:"target_num_replicas"`
	RequiredResources map[string]float64          `json:"required_resources"`
	Replicas          []replicaDetails            `json:"replicas"`
	AutoscalingDetail *autoscalingDetail          `json:"autoscaling_detail,omitempty"`
}

// replicaDetails is Ray's ReplicaDetails plus ongoing_requests (shoal's).
type replicaDetails struct {
	NodeID          string        `json:"node_id"`
	NodeIP          string        `json:"node_ip"`
	NodeInstanceID  string        `json:"node_instance_id"`
	ActorID         *string       `json:"actor_id"`
	ActorName       string        `json:"actor_name"`
	WorkerID        *string       `json:"worker_id"`
	LogFilePath     string        `json:"log_file_path"`
	ReplicaID       string        `json:"replica_id"`
	State           backend.State `json:"state"`
	PID             *int          `json:"pid"`
	StartTimeS      float64       `json:"start_time_s"`
	OngoingRequests int           `json:"ongoing_requests"`
}

// autoscalingDetail is Ray's DeploymentAutoscalingDetail; metrics holds shoal's view.
type autoscalingDetail struct {
	ScalingStatus string                        `json:"scaling_status"`
	Decisions     []any                         `json:"decisions"`
	Metrics       *controller.AutoscalingDetail `json:"metrics"`
	MetricsHealth string                        `json:"metrics_health"`
	Errors        []string                      `json:"errors"`
}

// localNode names the one machine of the process backend in Ray's node fields.
const localNode = "local"

func (a *API) instanceDetails(s *controller.Snapshot) *instanceDetails {
	h := s.HTTPOptions
	out := &instanceDetails{
		ControllerInfo: actorDetails{NodeID: ptr(localNode), NodeIP: ptr("127.0.0.1"), ActorName: ptr("SERVE_CONTROLLER_ACTOR")},
		ProxyLocation:  "HeadOnly",
		HTTPOptions: httpOptions{
			Host: h.Host, Port: h.Port, RequestTimeoutS: ptr(h.RequestTimeoutS),
			KeepAliveTimeoutS: h.KeepAliveTimeoutS,
			SSLKeyfile:        optional(h.SSLKeyfile), SSLCertfile: optional(h.SSLCertfile),
		},
		GRPCOptions:  grpcOptions{Port: 9000, GRPCServicerFunctions: []string{}},
		Proxies:      map[string]any{},
		DeployMode:   "MULTI_APP",
		Applications: make(map[string]*applicationDetails, len(s.Applications)),
	}
	for _, app := range s.Applications {
		ad := &applicationDetails{
			Name:                  app.Name,
			RoutePrefix:           app.RoutePrefix,
			Status:                app.Status,
			Message:               app.Message,
			LastDeployedTimeS:     unixSeconds(app.LastDeployed),
			DeployedAppConfig:     &app.Config,
			Source:                "declarative",
			Deployments:           make(map[string]*deploymentDetails, len(app.Deployments)),
			ExternalScalerEnabled: app.ExternalScalerEnabled,
		}
		for _, d := range app.Deployments {
			ad.Deployments[d.Name] = a.deploymentDetails(d)
		}
		out.Applications[app.Name] = ad
	}
	return out
}

func (a *API) deploymentDetails(d *controller.Deployment) *deploymentDetails {
	dd := &deploymentDetails{
		Name:              d.Name,
		Status:            d.Status,
		StatusTrigger:     d.StatusTrigger,
		Message:           d.Message,
		DeploymentConfig:  d.Config,
		TargetNumReplicas: d.Target,
		RequiredResources: map[string]float64{},
		Replicas:          make([]replicaDetails, 0, len(d.Replicas)),
	}
	for _, r := range d.Replicas {
		rd := replicaDetails{
			NodeID:     localNode,
			NodeIP:     "127.0.0.1",
			ActorName:  "SERVE_REPLICA::" + d.Key.App + "#" + d.Name + "#" + r.ID,
			ReplicaID:  r.ID,
			State:      r.State,
			StartTimeS: unixSeconds(r.StartTime),
		}
		if a.opts.LogDir != "" {
			rd.LogFilePath = filepath.Join(a.opts.LogDir, d.Key.App, d.Name, r.ID+".log")
		}
		if r.PID != 0 {
			rd.PID = ptr(r.PID)
		}
		if a.opts.Load != nil {
			rd.OngoingRequests = a.opts.Load.Ongoing(r.ID)
		}
		dd.Replicas = append(dd.Replicas, rd)
	}
	as := d.Autoscaling
	if a.opts.Autoscaling != nil && d.Mode == controller.ModeAutoscaling {
		if live := a.opts.Autoscaling.Detail(d.Key); live != nil {
			as = live
		}
	}
	if as != nil {
		status := "STABLE"
		switch {
		case as.Decision > d.Target:
			status = "UPSCALING"
		case as.Decision < d.Target:
			status = "DOWNSCALING"
		}
		dd.AutoscalingDetail = &autoscalingDetail{
			ScalingStatus: status, Decisions: []any{}, Metrics: as,
			MetricsHealth: "healthy", Errors: []string{},
		}
	}
	return dd
}

func unixSeconds(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}

func ptr[T any](v T) *T { return &v }

// optional is nil for "", so an unset path is null as in Ray.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
