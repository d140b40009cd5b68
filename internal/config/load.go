package config

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Load reads, defaults and validates the config file at path. Relative paths in it are
// resolved against the file's directory. On a bad config the error is an Errors listing
// every problem, each as "path:line: yaml.path: message"; warnings name the accepted
// fields that shoal ignores and are returned in either case.
func Load(path string) (*Config, []Warning, error) {
	return LoadFor(path, BackendProcess)
}

// LoadFor is Load for a backend (one of Backends): on BackendKubernetes a config must
// also give what that backend needs (see ParseFor).
func LoadFor(path, backend string) (*Config, []Warning, error) {
	if err := checkBackend(backend); err != nil {
		return nil, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return ParseFor(data, path, filepath.Dir(path), backend)
}

func checkBackend(backend string) error {
	if !slices.Contains(Backends, backend) {
		return fmt.Errorf("unknown backend %q: want %s", backend, strings.Join(Backends, " or "))
	}
	return nil
}

// Parse decodes a config from YAML or JSON (JSON is YAML), fills in defaults, and
// validates it. name is used in messages (the file name, or "" for a request body);
// relative paths are resolved against baseDir ("" is the working directory). On a bad
// config the error is an Errors listing every problem.
func Parse(data []byte, name, baseDir string) (*Config, []Warning, error) {
	return ParseFor(data, name, baseDir, BackendProcess)
}

// ParseFor is Parse for a backend (one of Backends). BackendProcess is Parse. On
// BackendKubernetes, every deployment needs an image, and the ingress deployment of an
// application with an import_path needs a command: each missing one is an error at its
// path ("applications[0].deployments[1].image: required on the kubernetes backend").
func ParseFor(data []byte, name, baseDir, backend string) (*Config, []Warning, error) {
	return ParseOver(data, name, baseDir, backend, nil)
}

// ParseOver is ParseFor for a config sent to replace deployed, the config running now
// (nil when there is none): PUT /api/serve/applications/ parses its body so. A
// deployment that names no working_dir, in an application whose runtime_env names no
// local one, keeps the directory it runs in: a deployment of deployed keeps its own; a
// deployment new to an application of deployed takes the one of that application's
// ingress deployment; only an application new to deployed takes baseDir. So the same
// config sent again is the same version however it is sent (a file read by `shoal
// start`, whose default is the file's directory, or a body sent by curl, whose base is
// shoal's working directory). A working_dir that is given, absolute or relative to
// baseDir, is used as written.
func ParseOver(data []byte, name, baseDir, backend string, deployed *Config) (*Config, []Warning, error) {
	if err := checkBackend(backend); err != nil {
		return nil, nil, err
	}
	base, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, nil, err
	}
	p := newParser(name, base)
	p.backend = backend
	p.deployed = deployed
	var cfg *Config
	if root := p.parseYAML(data); root != nil {
		cfg = p.config(root)
		p.finish(cfg)
	}
	sortWarnings(p.warns)
	if len(p.errs) > 0 {
		sortErrors(p.errs)
		return nil, p.warns, p.errs
	}
	return cfg, p.warns, nil
}
