package api

import (
	"errors"
	"fmt"
	"net/http"

	"shoal/internal/auth"
	"shoal/internal/controller"
)

// tokenResponse is the answer of the token routes. id names the token in the audit log.
type tokenResponse struct {
	Token string `json:"token"`
	ID    string `json:"id"`
}

// tokenless explains why app has no token: it is unknown, or its external scaler is off.
func (a *API) tokenless(app string) error {
	sa := a.intents.Snapshot().App(app)
	if sa == nil {
		return errorf(http.StatusNotFound, "application %q not found", app)
	}
	if !sa.ExternalScalerEnabled {
		return errorf(http.StatusNotFound, "application %q has no token: external_scaler_enabled is false", app)
	}
	return errorf(http.StatusNotFound, "application %q has no token yet", app)
}

func (a *API) getToken(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	tok, ok := a.intents.AppToken(app)
	if !ok {
		return a.tokenless(app)
	}
	writeJSON(w, http.StatusOK, tokenResponse{Token: tok.Secret, ID: tok.ID})
	return nil
}

func (a *API) rotateToken(w http.ResponseWriter, r *http.Request) error {
	app := r.PathValue("app")
	if _, ok := a.intents.AppToken(app); !ok {
		return a.tokenless(app)
	}
	tok, err := a.intents.RotateToken(r.Context(), app)
	if errors.Is(err, controller.ErrNotFound) {
		return a.tokenless(app)
	}
	if err != nil {
		return fmt.Errorf("rotating the token of %q: %w", app, err)
	}
	a.log.Info("application token rotated", "app", app, "token", tok.ID)
	writeJSON(w, http.StatusOK, tokenResponse{Token: tok.Secret, ID: tok.ID})
	return nil
}

// shutdown answers 202 and then starts the graceful stop on its own goroutine: the stop
// waits for in-flight requests, this one included.
func (a *API) shutdown(w http.ResponseWriter, r *http.Request) error {
	if a.opts.Shutdown == nil {
		return errorf(http.StatusNotImplemented, "shutdown is not available on this server")
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"message": "shutting down"})
	a.log.Info("shutdown requested", "client", auth.ClientAddr(r))
	go a.opts.Shutdown()
	return nil
}
