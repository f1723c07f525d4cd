// istioctl-dump reads a ztunnel /config_dump with istioctl's own code (istio.io/istio
// istioctl/pkg/writer/ztunnel/configdump, from the Go module proxy) and prints what
// `istioctl ztunnel-config all` / `certificates` / `connections` would show, as JSON:
// {"summary": "<tables>", "certificates": "<table>", "connections": "<table>", "error": ""}.
// A dump istioctl cannot read gives a non-empty "error" and exit status 1.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	"istio.io/istio/istioctl/pkg/writer/ztunnel/configdump"
)

type out struct {
	Summary      string `json:"summary"`
	Certificates string `json:"certificates"`
	Connections  string `json:"connections"`
	Error        string `json:"error"`
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: istioctl-dump <config_dump.json>")
		os.Exit(2)
	}
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var o out
	run := func(f func(w *configdump.ConfigWriter) error) string {
		var buf bytes.Buffer
		w := &configdump.ConfigWriter{Stdout: &buf}
		if err := w.Prime(b); err != nil {
			o.Error = err.Error()
			return ""
		}
		if err := f(w); err != nil && o.Error == "" {
			o.Error = err.Error()
		}
		return buf.String()
	}
	o.Summary = run(func(w *configdump.ConfigWriter) error { return w.PrintFullSummary(true) })
	o.Certificates = run(func(w *configdump.ConfigWriter) error { return w.PrintSecretSummary() })
	o.Connections = run(func(w *configdump.ConfigWriter) error {
		return w.PrintConnectionsSummary(configdump.ConnectionsFilter{})
	})
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(o)
	if o.Error != "" {
		os.Exit(1)
	}
}
