package telemetry

import (
	"context"
	"fmt"
	"net/url"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// TracingConfig configures OpenTelemetry tracing.
type TracingConfig struct {
	// Exporter is "none" (default: spans are not recorded) or "otlp"
	// (OTLP over HTTP to Endpoint).
	Exporter string `yaml:"exporter"`
	// Endpoint is the OTLP/HTTP base URL, e.g. http://127.0.0.1:4318.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio of new traces recorded (0..1); traces started upstream
	// follow the caller's sampling decision.
	SampleRatio float64 `yaml:"sample_ratio"`
	// ServiceName reported as service.name.
	ServiceName string `yaml:"service_name"`
}

// Validate names the offending key under prefix (e.g. "telemetry.traces").
func (c TracingConfig) Validate(prefix string) error {
	switch c.Exporter {
	case "", "none":
	case "otlp":
		u, err := url.Parse(c.Endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.endpoint: %q is not an http(s) URL (e.g. http://127.0.0.1:4318)", prefix, c.Endpoint)
		}
	default:
		return fmt.Errorf("%s.exporter: must be none or otlp, not %q", prefix, c.Exporter)
	}
	if c.SampleRatio < 0 || c.SampleRatio > 1 {
		return fmt.Errorf("%s.sample_ratio: must be between 0 and 1, got %v", prefix, c.SampleRatio)
	}
	return nil
}

// NewTracer returns the tracer of the pipeline and a shutdown function that
// flushes pending spans. With the exporter off it is a no-op tracer.
func NewTracer(ctx context.Context, c TracingConfig, version string) (trace.Tracer, func(context.Context) error, error) {
	if c.Exporter == "" || c.Exporter == "none" {
		return noop.NewTracerProvider().Tracer("sightline"), func(context.Context) error { return nil }, nil
	}
	u, err := url.Parse(c.Endpoint)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: otlp endpoint: %w", err)
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	if u.Path != "" && u.Path != "/" {
		opts = append(opts, otlptracehttp.WithURLPath(u.Path))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("telemetry: otlp exporter: %w", err)
	}
	name := c.ServiceName
	if name == "" {
		name = "sightline"
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(name), semconv.ServiceVersion(version)))
	if err != nil {
		res = resource.Default()
	}
	ratio := c.SampleRatio
	if ratio == 0 {
		ratio = 1
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	return tp.Tracer("sightline"), tp.Shutdown, nil
}
