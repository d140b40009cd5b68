package prometheus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors of a query that answered but gave no usable number.
var (
	ErrNoData        = errors.New("query returned no data")
	ErrNotANumber    = errors.New("query returned NaN or an infinity")
	ErrManySeries    = errors.New("query returned more than one series; aggregate it, e.g. with sum()")
	ErrResultType    = errors.New("query returned neither a scalar nor a vector")
	ErrQueryRejected = errors.New("prometheus rejected the query")
)

// Querier evaluates an instant PromQL query.
type Querier interface {
	Query(ctx context.Context, query string, at time.Time) (float64, error)
}

// HTTPQuerier queries a Prometheus server's HTTP API (GET /api/v1/query).
type HTTPQuerier struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:9090.
	URL    string
	Client *http.Client // default: a client with a 10s timeout
}

// apiResponse is the envelope of Prometheus's HTTP API.
type apiResponse struct {
	Status    string `json:"status"`
	ErrorType string `json:"errorType"`
	Error     string `json:"error"`
	Data      struct {
		ResultType string          `json:"resultType"`
		Result     json.RawMessage `json:"result"`
	} `json:"data"`
}

// Query evaluates query at the given time and returns its one number.
func (q HTTPQuerier) Query(ctx context.Context, query string, at time.Time) (float64, error) {
	hc := q.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	v := url.Values{"query": {query}}
	if !at.IsZero() {
		v.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(q.URL, "/")+"/api/v1/query?"+v.Encode(), nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("reading prometheus's answer: %w", err)
	}
	var r apiResponse
	if err := json.Unmarshal(body, &r); err != nil {
		return 0, fmt.Errorf("prometheus answered %s with no JSON: %.200s", resp.Status, body)
	}
	if r.Status != "success" {
		return 0, fmt.Errorf("%w: %s: %s", ErrQueryRejected, r.ErrorType, r.Error)
	}
	return parseResult(r.Data.ResultType, r.Data.Result)
}

// parseResult takes the one number out of a scalar or a one-sample vector.
func parseResult(typ string, raw json.RawMessage) (float64, error) {
	var sample []any // [unix time, "value"]
	switch typ {
	case "scalar":
		if err := json.Unmarshal(raw, &sample); err != nil {
			return 0, fmt.Errorf("decoding a scalar: %w", err)
		}
	case "vector":
		var vec []struct {
			Value []any `json:"value"`
		}
		if err := json.Unmarshal(raw, &vec); err != nil {
			return 0, fmt.Errorf("decoding a vector: %w", err)
		}
		switch len(vec) {
		case 0:
			return 0, ErrNoData
		case 1:
			sample = vec[0].Value
		default:
			return 0, fmt.Errorf("%w (%d series)", ErrManySeries, len(vec))
		}
	default:
		return 0, fmt.Errorf("%w: %q", ErrResultType, typ)
	}
	if len(sample) != 2 {
		return 0, fmt.Errorf("malformed sample %v", sample)
	}
	s, _ := sample[1].(string)
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("malformed sample value %q", s)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, ErrNotANumber
	}
	return f, nil
}
