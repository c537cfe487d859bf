// kstatus-check reads one Kubernetes object (YAML or JSON) on stdin and prints how the kstatus
// library judges it - the same library Flux's health checks and `kubectl wait`-style tooling in
// cli-utils use - as one JSON line: {"status":"Current","message":"..."}.
//
// It exists so that the operator's tests can prove that GuiSession conditions mean to GitOps
// tools what the operator intends (InProgress while starting, Current when Ready, Failed when
// Stalled), judged by the real library rather than by a re-implementation of its rules.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if err := run(os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "kstatus-check: %v\n", err)
		os.Exit(1)
	}
}

func run(in io.Reader, out io.Writer) error {
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	// JSON is YAML, so one conversion covers both input forms.
	data, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("stdin is neither YAML nor JSON: %w", err)
	}
	var obj map[string]interface{}
	// apimachinery's decoder keeps integers as int64, as the kstatus accessors require.
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("stdin is not one object: %w", err)
	}
	if obj == nil {
		return fmt.Errorf("stdin holds no object")
	}
	res, err := status.Compute(&unstructured.Unstructured{Object: obj})
	if err != nil {
		return fmt.Errorf("computing status: %w", err)
	}
	return json.NewEncoder(out).Encode(verdict{Status: res.Status.String(), Message: res.Message})
}
