package auth

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"shoal/internal/store"
)

func TestNewSecretsArePrefixedRandomHex(t *testing.T) {
	a, b := NewSecret(), NewSecret()
	for _, s := range []string{a, b} {
		if !strings.HasPrefix(s, SecretPrefix) || !hex64.MatchString(strings.TrimPrefix(s, SecretPrefix)) {
			t.Errorf("secret %q is not %s and 64 hex digits", s, SecretPrefix)
		}
	}
	if a == b {
		t.Error("two secrets are equal")
	}
}

func TestEqual(t *testing.T) {
	cases := []struct {
		name string
		a, b string
		want bool
	}{
		{"the same strings are equal", "abc", "abc", true},
		{"two empty strings are equal", "", "", true},
		{"a prefix is not equal", "abc", "ab", false},
		{"a longer string is not equal", "abc", "abcd", false},
		{"a change in the last byte is not equal", "abc", "abd", false},
		{"a string and the empty string are not equal", "abc", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Equal(tc.a, tc.b); got != tc.want {
				t.Fatalf("Equal(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
			}
		})
	}
}

func TestBearer(t *testing.T) {
	cases := []struct {
		name    string
		headers []string
		want    string
		ok      bool
	}{
		{"a bearer token is read", []string{"Bearer abc"}, "abc", true},
		{"the scheme is matched without case", []string{"bEARER abc"}, "abc", true},
		{"extra spaces around the token are allowed", []string{"Bearer   abc  "}, "abc", true},
		{"token68 characters are kept", []string{"Bearer a-b.c_d~e+f/g=="}, "a-b.c_d~e+f/g==", true},
		{"no header is no token", nil, "", false},
		{"another scheme is no token", []string{"Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, "", false},
		{"the scheme alone is no token", []string{"Bearer"}, "", false},
		{"the scheme and spaces are no token", []string{"Bearer   "}, "", false},
		{"a scheme run into the token is no token", []string{"Bearerabc"}, "", false},
		{"a token with a space inside is refused", []string{"Bearer ab c"}, "", false},
		{"a token with a tab inside is refused", []string{"Bearer ab\tc"}, "", false},
		{"two authorization headers are refused", []string{"Bearer abc", "Bearer abc"}, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			for _, h := range tc.headers {
				r.Header.Add("Authorization", h)
			}
			got, ok := Bearer(r)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Bearer(%q) = %q, %v; want %q, %v", tc.headers, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestClientAddrIsTheConnectionsHost(t *testing.T) {
	cases := []struct {
		name, remote, forwarded, want string
	}{
		{"an IPv4 address loses its port", "192.0.2.7:51234", "", "192.0.2.7"},
		{"an IPv6 address loses its port and brackets", "[2001:db8::1]:443", "", "2001:db8::1"},
		{"X-Forwarded-For is ignored", "192.0.2.7:1", "198.51.100.9", "192.0.2.7"},
		{"an address without a port is kept whole", "192.0.2.7", "", "192.0.2.7"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tc.remote
			if tc.forwarded != "" {
				r.Header.Set("X-Forwarded-For", tc.forwarded)
			}
			if got := ClientAddr(r); got != tc.want {
				t.Fatalf("ClientAddr = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	const admin = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	apps := map[string]store.Token{
		"shop":  {ID: "app:shop#2", Secret: "shoal_app_aaaa1111"},
		"blog":  {ID: "app:blog#1", Secret: "shoal_app_bbbb2222"},
		"empty": {ID: "app:empty#1", Secret: ""},
	}
	cases := []struct {
		name     string
		token    string
		admin    string
		want     Principal
		ok       bool
		mayScale string // an application the principal may scale ("" to skip)
		mayNot   string // one it may not ("" to skip)
	}{
		{
			name: "the admin token is the admin", token: admin, admin: admin,
			want: Principal{Admin: true, TokenID: "admin"}, ok: true, mayScale: "shop",
		},
		{
			name: "an application token is its application", token: "shoal_app_aaaa1111", admin: admin,
			want: Principal{App: "shop", TokenID: "app:shop#2"}, ok: true, mayScale: "shop", mayNot: "blog",
		},
		{
			name: "another application's token is that other application", token: "shoal_app_bbbb2222", admin: admin,
			want: Principal{App: "blog", TokenID: "app:blog#1"}, ok: true, mayScale: "blog", mayNot: "shop",
		},
		{name: "an unknown token is nobody", token: "shoal_app_cccc3333", admin: admin},
		{name: "an empty token is nobody, even if some secret is empty", token: "", admin: admin},
		{name: "an empty token is nobody when there is no admin token", token: "", admin: ""},
		{name: "a prefix of the admin token is nobody", token: admin[:63], admin: admin},
		{name: "a prefix of an application token is nobody", token: "shoal_app_aaaa111", admin: admin},
		{name: "an application token with more after it is nobody", token: "shoal_app_aaaa11112", admin: admin},
		{name: "the admin token's case matters", token: strings.ToUpper(admin), admin: admin},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Authenticate(tc.token, tc.admin, apps)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("Authenticate = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
			if tc.mayScale != "" && !got.MayScale(tc.mayScale) {
				t.Errorf("%+v may not scale %s, want it may", got, tc.mayScale)
			}
			if tc.mayNot != "" && got.MayScale(tc.mayNot) {
				t.Errorf("%+v may scale %s, want it may not", got, tc.mayNot)
			}
		})
	}
}

func TestAuthenticateResolvesEqualSecretsTheSameWayEveryTime(t *testing.T) {
	apps := map[string]store.Token{
		"b": {ID: "app:b#1", Secret: "same"},
		"a": {ID: "app:a#1", Secret: "same"},
		"c": {ID: "app:c#1", Secret: "same"},
	}
	for range 20 { // map order varies between runs of the loop
		if p, _ := Authenticate("same", "", apps); p.App != "a" {
			t.Fatalf("Authenticate picked %q, want a", p.App)
		}
		if p, _ := Authenticate("same", "same", apps); !p.Admin {
			t.Fatalf("Authenticate picked %+v, want the admin", p)
		}
	}
}
