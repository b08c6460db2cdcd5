// ocibuild assembles an OCI image from a plan (plan.go) written by scripts/image/build.mjs, and
// writes it as an OCI image layout tarball. Its output depends only on the plan and the files it
// names: layers are written with sorted entries and fixed owners and times (layer.go), the config
// carries the plan's creation time, so the same inputs give the same manifest digest.
//
//	ocibuild -plan plan.json   → prints {"digest", "compressedBytes", "uncompressedBytes", ...}
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
)

func main() {
	planFile := flag.String("plan", "", "the build plan (JSON)")
	flag.Parse()
	if err := run(*planFile); err != nil {
		fmt.Fprintln(os.Stderr, "ocibuild:", err)
		os.Exit(1)
	}
}

func run(planFile string) error {
	plan, err := readPlan(planFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(plan.WorkDir, 0o755); err != nil {
		return err
	}
	img, report, err := buildImage(plan)
	if err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	report.Digest = digest.String()
	manifest, err := img.RawManifest()
	if err != nil {
		return err
	}
	config, err := img.RawConfigFile()
	if err != nil {
		return err
	}
	report.Compressed = int64(len(manifest) + len(config))
	layers, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range layers {
		size, err := l.Size()
		if err != nil {
			return err
		}
		report.Compressed += size
	}
	if err := writeLayout(img, plan, plan.Created.UTC()); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(report)
}
