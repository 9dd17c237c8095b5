// Package deploy holds no Go code of the pipeline: it is the home of the Docker Compose
// files, the Dockerfile, the NATS/Prometheus/Grafana configuration and the scripts that
// start real services locally (deploy/local). Its tests validate those files, since no
// Docker engine runs in CI. See README.md in this folder.
package deploy
