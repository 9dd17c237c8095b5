package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/parquet-go/parquet-go"
	"gocloud.dev/blob"

	"github.com/sightline/sightline/internal/stage"
	"github.com/sightline/sightline/schemas"
)

const parquetAvailable = true

// ErrParquet wraps errors of Parquet objects.
var ErrParquet = errors.New("archive: parquet")

// ParquetRow is one row of a Parquet archive object: the CloudEvents
// attributes analytics engines filter on as columns, the other attributes
// (specversion, datacontenttype, ingesttime, lagms, producer, traceparent
// and the enrichment attributes) as one JSON object, the payload as JSON
// text, and where the event sat in the stream.
type ParquetRow struct {
	ID            string    `parquet:"id"`
	Type          string    `parquet:"type,dict"`
	Source        string    `parquet:"source,dict"`
	Time          time.Time `parquet:"time,timestamp(nanosecond:utc)"`
	CorrelationID string    `parquet:"correlationid"`
	Subject       string    `parquet:"subject,dict"`
	SyncScope     string    `parquet:"syncscope,dict"`
	SyncTag       string    `parquet:"synctag,dict"`
	Attributes    string    `parquet:"attributes,json"`
	Data          string    `parquet:"data,json"`
	Stream        string    `parquet:"stream,dict"`
	Sequence      int64     `parquet:"sequence"`
}

// parquetRowGroup bounds the rows buffered before a row group is flushed.
const parquetRowGroup = 20000

// rowOf splits a conformed event into a row.
func rowOf(m *stage.Message) (ParquetRow, error) {
	var ev schemas.Event
	if err := json.Unmarshal(m.Data, &ev); err != nil {
		return ParquetRow{}, fmt.Errorf("%w: event is not a conformed event: %w", ErrParquet, err)
	}
	attrs := make(map[string]any, 6+len(ev.Attributes))
	for k, v := range ev.Attributes {
		attrs[k] = v
	}
	attrs["specversion"] = ev.SpecVersion
	attrs["datacontenttype"] = ev.DataContentType
	attrs["lagms"] = ev.LagMs
	if !ev.IngestTime.IsZero() {
		attrs["ingesttime"] = ev.IngestTime.UTC().Format(time.RFC3339Nano)
	}
	if ev.Producer != "" {
		attrs["producer"] = ev.Producer
	}
	if ev.TraceParent != "" {
		attrs["traceparent"] = ev.TraceParent
	}
	ab, err := json.Marshal(attrs)
	if err != nil {
		return ParquetRow{}, fmt.Errorf("%w: attributes of %s: %w", ErrParquet, ev.ID, err)
	}
	data := string(ev.Data)
	if data == "" {
		data = "null"
	}
	return ParquetRow{
		ID: ev.ID, Type: ev.Type, Source: ev.Source, Time: ev.Time.UTC(), CorrelationID: ev.CorrelationID,
		Subject: ev.Subject, SyncScope: ev.SyncScope, SyncTag: ev.SyncTag,
		Attributes: string(ab), Data: data, Stream: m.Meta.Stream, Sequence: int64(m.Meta.Sequence),
	}, nil
}

// EventLine rebuilds the conformed event (one NDJSON line, as the
// processors encode it) from a row.
func (r *ParquetRow) EventLine() ([]byte, error) {
	var ev schemas.Event
	if r.Attributes != "" {
		// specversion, datacontenttype, ... and the enrichment attributes.
		if err := json.Unmarshal([]byte(r.Attributes), &ev); err != nil {
			return nil, fmt.Errorf("%w: attributes of %s: %w", ErrParquet, r.ID, err)
		}
	}
	ev.ID, ev.Type, ev.Source, ev.Time = r.ID, r.Type, r.Source, r.Time.UTC()
	ev.CorrelationID, ev.Subject, ev.SyncScope, ev.SyncTag = r.CorrelationID, r.Subject, r.SyncScope, r.SyncTag
	if !json.Valid([]byte(r.Data)) {
		return nil, fmt.Errorf("%w: data of %s is not JSON", ErrParquet, r.ID)
	}
	ev.Data = json.RawMessage(r.Data)
	return ev.AppendJSON(make([]byte, 0, 256+len(r.Data)+len(r.Attributes))), nil
}

// writeParquet writes the partition's events as one snappy-compressed
// Parquet file and returns the size of their NDJSON form.
func writeParquet(w io.Writer, msgs []*stage.Message) (int64, error) {
	pw := parquet.NewGenericWriter[ParquetRow](w,
		parquet.Compression(&parquet.Snappy),
		parquet.MaxRowsPerRowGroup(parquetRowGroup),
		parquet.CreatedBy("sightline archive sink", "", ""),
	)
	var raw int64
	rows := make([]ParquetRow, 0, min(len(msgs), 1024))
	flush := func() error {
		if _, err := pw.Write(rows); err != nil {
			return fmt.Errorf("%w: write rows: %w", ErrParquet, err)
		}
		rows = rows[:0]
		return nil
	}
	for _, msg := range msgs {
		row, err := rowOf(msg)
		if err != nil {
			return 0, err
		}
		raw += int64(len(msg.Data)) + 1
		rows = append(rows, row)
		if len(rows) == cap(rows) {
			if err := flush(); err != nil {
				return 0, err
			}
		}
	}
	if err := flush(); err != nil {
		return 0, err
	}
	if err := pw.Close(); err != nil {
		return 0, fmt.Errorf("%w: close: %w", ErrParquet, err)
	}
	return raw, nil
}

// readParquet calls fn with each event of a Parquet object, rebuilt as its
// NDJSON line. The object is read whole (Parquet's footer is at the end);
// objects are bounded by the sink's batch size.
func readParquet(ctx context.Context, b *blob.Bucket, key string, fn func([]byte) error) error {
	body, err := b.ReadAll(ctx, key)
	if err != nil {
		return fmt.Errorf("archive: read %s: %w", key, err)
	}
	return ReadParquetRows(bytes.NewReader(body), int64(len(body)), func(r *ParquetRow) error {
		line, err := r.EventLine()
		if err != nil {
			return fmt.Errorf("archive: read %s: %w", key, err)
		}
		return fn(line)
	})
}

// ReadParquetRows calls fn with each row of a Parquet archive object.
func ReadParquetRows(ra io.ReaderAt, size int64, fn func(*ParquetRow) error) error {
	f, err := parquet.OpenFile(ra, size)
	if err != nil {
		return fmt.Errorf("%w: open: %w", ErrParquet, err)
	}
	pr := parquet.NewGenericReader[ParquetRow](f)
	defer pr.Close()
	buf := make([]ParquetRow, 512)
	for {
		n, err := pr.Read(buf)
		for i := range n {
			if ferr := fn(&buf[i]); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: read rows: %w", ErrParquet, err)
		}
	}
}
