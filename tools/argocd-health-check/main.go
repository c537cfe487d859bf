// argocd-health-check runs an Argo CD custom health check (Lua) against one Kubernetes object
// (YAML or JSON on stdin) and prints the verdict as one JSON line: {"status":"Healthy","message":"..."}.
//
//	argocd-health-check HEALTH.lua < object.yaml
//
// It evaluates the script the way Argo CD does: with gopher-lua, only the package, base and table
// libraries opened, the object as the global `obj`, a one-second limit, and a returned table
// whose `status` must be one of Argo CD's health codes. So the operator's tests can check the
// health script shipped in examples/ against objects the real operator wrote.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// Argo CD's health status codes; any other value is reported as an error.
var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health-check HEALTH.lua < object.yaml")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "argocd-health-check: %v\n", err)
		os.Exit(1)
	}
}

func run(scriptPath string, in io.Reader, out io.Writer) error {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(in)
	if err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}
	data, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("stdin is neither YAML nor JSON: %w", err)
	}
	var obj map[string]interface{}
	if err := utiljson.Unmarshal(data, &obj); err != nil || obj == nil {
		return fmt.Errorf("stdin is not one object: %v", err)
	}

	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage,
		lua.BaseLibName: lua.OpenBase,
		lua.TabLibName:  lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), Protect: true}, lua.LString(name)); err != nil {
			return fmt.Errorf("opening Lua library %s: %w", name, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(string(script)); err != nil {
		return fmt.Errorf("health script: %w", err)
	}
	result, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return fmt.Errorf("health script returned %s, not a table", l.Get(-1).Type())
	}
	v := verdict{
		Status:  lua.LVAsString(result.RawGetString("status")),
		Message: lua.LVAsString(result.RawGetString("message")),
	}
	if !validStatus[v.Status] {
		return fmt.Errorf("health script returned status %q, which Argo CD does not know", v.Status)
	}
	return json.NewEncoder(out).Encode(v)
}

// toLua converts decoded JSON into Lua values: objects and arrays become tables (arrays 1-based).
func toLua(l *lua.LState, value interface{}) lua.LValue {
	switch v := value.(type) {
	case map[string]interface{}:
		t := l.NewTable()
		for key, item := range v {
			t.RawSetString(key, toLua(l, item))
		}
		return t
	case []interface{}:
		t := l.NewTable()
		for _, item := range v {
			t.Append(toLua(l, item))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	default:
		return lua.LNil
	}
}
