package docs

import (
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestTaskfileHasNoDuplicateKeys: a task defined twice in Taskfile.yml is
// silently the last one to go-task (a second `security` once hid the
// first one's attack tests); the YAML decoder refuses it.
func TestTaskfileHasNoDuplicateKeys(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "Taskfile.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("Taskfile.yml: %v", err)
	}
	if _, ok := v["tasks"].(map[string]any)["security"]; !ok {
		t.Fatal("Taskfile.yml has no security task")
	}
}
