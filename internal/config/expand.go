package config

import (
	"fmt"
	"strings"
)

// Expand replaces each ${NAME} in s with lookup(NAME), or "" when lookup reports the
// variable unset. "$${" is a literal "${" (so a shell script in a command can keep its
// own ${VAR:-default}); any other "$" is left as it is. Load has already refused
// malformed references, so Expand copies one it meets unchanged.
func Expand(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			b.WriteString("${")
			i += 3
			continue
		}
		if strings.HasPrefix(s[i:], "${") {
			end := strings.IndexByte(s[i+2:], '}')
			if end >= 0 {
				name := s[i+2 : i+2+end]
				if validName(name) {
					if v, ok := lookup(name); ok {
						b.WriteString(v)
					}
					i += end + 3
					continue
				}
			}
		}
		b.WriteByte(s[i])
		i++
	}
	return b.String()
}

// checkRefs returns why a ${...} reference in s is malformed, or nil.
func checkRefs(s string) error {
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "$${") {
			i += 3
			continue
		}
		if !strings.HasPrefix(s[i:], "${") {
			i++
			continue
		}
		end := strings.IndexByte(s[i+2:], '}')
		if end < 0 {
			return fmt.Errorf(`unclosed "${" in %q (write "$${" for a literal "${")`, s)
		}
		if name := s[i+2 : i+2+end]; !validName(name) {
			return fmt.Errorf(`malformed reference "${%s}" in %q: a variable name is letters, digits and "_", not starting with a digit (write "$${" for a literal "${")`, name, s)
		}
		i += end + 3
	}
	return nil
}

// validName reports whether s is a POSIX shell variable name.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
