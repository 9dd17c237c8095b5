package replay

import (
	"encoding/json"
	"time"
)

func eventTime(data []byte) (time.Time, bool) {
	var h struct {
		Time time.Time `json:"time"`
	}
	if json.Unmarshal(data, &h) != nil || h.Time.IsZero() {
		return time.Time{}, false
	}
	return h.Time, true
}
