package config

import (
	"encoding/json"
	"fmt"
)

// MarshalJSON writes num_replicas as Ray does: an integer or "auto" (null when unset;
// Deployment's MarshalJSON leaves the field out then).
func (n NumReplicas) MarshalJSON() ([]byte, error) {
	switch {
	case !n.Set:
		return []byte("null"), nil
	case n.Auto:
		return []byte(`"auto"`), nil
	}
	return json.Marshal(n.Value)
}

// UnmarshalJSON reads an integer, "auto" or null.
func (n *NumReplicas) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case nil:
		*n = NumReplicas{Value: DefaultNumReplicas}
	case string:
		if v != "auto" {
			return fmt.Errorf("num_replicas must be an integer or \"auto\", got %q", v)
		}
		*n = NumReplicas{Auto: true, Set: true}
	case float64:
		if v != float64(int(v)) {
			return fmt.Errorf("num_replicas must be an integer, got %v", v)
		}
		*n = NumReplicas{Value: int(v), Set: true}
	default:
		return fmt.Errorf("num_replicas must be an integer or \"auto\", got %s", b)
	}
	return nil
}

// MarshalJSON writes a deployment in Ray's schema such that Parse reads it back to an
// equal Deployment: num_replicas is left out when it was not given, and a command that
// Load made from the application's import_path is left out (Parse makes it again).
func (d Deployment) MarshalJSON() ([]byte, error) {
	type plain Deployment // the same fields without this method
	out := struct {
		plain
		NumReplicas *NumReplicas `json:"num_replicas,omitempty"`
		Command     []string     `json:"command,omitempty"`
	}{plain: plain(d)}
	if d.NumReplicas.Set {
		nr := d.NumReplicas
		out.NumReplicas = &nr
	}
	if !d.CommandFromImportPath {
		out.Command = d.Command
	}
	return json.Marshal(out)
}
