package config

// IngressDeployment returns the deployment that receives the application's HTTP
// traffic: the one with ingress: true, else the first. It is nil only for an
// application without deployments (which Load refuses).
func (a *Application) IngressDeployment() *Deployment {
	for i := range a.Deployments {
		if a.Deployments[i].Ingress {
			return &a.Deployments[i]
		}
	}
	if len(a.Deployments) == 0 {
		return nil
	}
	return &a.Deployments[0]
}

// Application returns the named application of c, or nil (also for a nil c).
func (c *Config) Application(name string) *Application {
	if c == nil {
		return nil
	}
	for i := range c.Applications {
		if c.Applications[i].Name == name {
			return &c.Applications[i]
		}
	}
	return nil
}

// Deployment returns the named deployment of a, or nil (also for a nil a).
func (a *Application) Deployment(name string) *Deployment {
	if a == nil {
		return nil
	}
	for i := range a.Deployments {
		if a.Deployments[i].Name == name {
			return &a.Deployments[i]
		}
	}
	return nil
}
