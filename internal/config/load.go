package config

import (
	"os"
	"path/filepath"
)

// Load reads, defaults and validates the config file at path. Relative paths in it are
// resolved against the file's directory. On a bad config the error is an Errors listing
// every problem, each as "path:line: yaml.path: message"; warnings name the accepted
// fields that shoal ignores and are returned in either case.
func Load(path string) (*Config, []Warning, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	return Parse(data, path, filepath.Dir(path))
}

// Parse decodes a config from YAML or JSON (JSON is YAML), fills in defaults, and
// validates it. name is used in messages (the file name, or "" for a request body);
// relative paths are resolved against baseDir ("" is the working directory). On a bad
// config the error is an Errors listing every problem.
func Parse(data []byte, name, baseDir string) (*Config, []Warning, error) {
	base, err := filepath.Abs(baseDir)
	if err != nil {
		return nil, nil, err
	}
	p := newParser(name, base)
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
