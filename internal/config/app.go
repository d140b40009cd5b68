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
