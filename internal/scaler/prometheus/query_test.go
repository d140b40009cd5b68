package prometheus

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHTTPQuerierTakesTheOneNumberOutOfTheAnswer(t *testing.T) {
	cases := []struct {
		name, body string
		want       float64
		err        error
	}{
		{"a one-sample vector gives its value",
			`{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1764320400.5,"37.5"]}]}}`, 37.5, nil},
		{"a scalar gives its value",
			`{"status":"success","data":{"resultType":"scalar","result":[1764320400,"4"]}}`, 4, nil},
		{"an empty vector is no data",
			`{"status":"success","data":{"resultType":"vector","result":[]}}`, 0, ErrNoData},
		{"several series must be aggregated first",
			`{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"1"]},{"value":[1,"2"]}]}}`, 0, ErrManySeries},
		{"NaN is not a number",
			`{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"NaN"]}]}}`, 0, ErrNotANumber},
		{"+Inf is not a number either",
			`{"status":"success","data":{"resultType":"scalar","result":[1,"+Inf"]}}`, 0, ErrNotANumber},
		{"a range vector is refused",
			`{"status":"success","data":{"resultType":"matrix","result":[]}}`, 0, ErrResultType},
		{"a bad query is an error with prometheus's words",
			`{"status":"error","errorType":"bad_data","error":"parse error"}`, 0, ErrQueryRejected},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var gotQuery, gotTime string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/api/v1/query" {
					http.NotFound(w, r)
					return
				}
				gotQuery, gotTime = r.URL.Query().Get("query"), r.URL.Query().Get("time")
				w.Header().Set("Content-Type", "application/json")
				w.Write([]byte(c.body))
			}))
			defer srv.Close()
			at := time.Unix(1764320400, 500e6)
			v, err := HTTPQuerier{URL: srv.URL + "/"}.Query(t.Context(), `sum(x{a="b"})`, at)
			if !errors.Is(err, c.err) || v != c.want {
				t.Errorf("got %v, %v; want %v, %v", v, err, c.want, c.err)
			}
			if gotQuery != `sum(x{a="b"})` || gotTime != "1764320400.500" {
				t.Errorf("sent query=%q time=%q", gotQuery, gotTime)
			}
		})
	}
}

func TestHTTPQuerierReportsAnUnreachableServer(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	if _, err := (HTTPQuerier{URL: url}).Query(t.Context(), "up", time.Time{}); err == nil {
		t.Error("no error from a closed server")
	}
}
