package schemas

import "github.com/sightline/sightline/internal/jsonscan"

// LoneSurrogateEscape reports whether the JSON text b holds a lone
// surrogate escape in any of its strings.
func LoneSurrogateEscape(b []byte) bool { return jsonscan.LoneSurrogate(b) }
