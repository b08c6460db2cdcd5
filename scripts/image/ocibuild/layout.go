package main

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// writeLayout writes the image as an OCI image layout (index.json names it for `ctr images import`
// and for OCI tools) and packs that layout into one tarball with fixed times and owners.
func writeLayout(img v1.Image, plan *Plan, created time.Time) error {
	dir := filepath.Join(plan.WorkDir, "layout")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	annotations := map[string]string{}
	if plan.ImageName != "" {
		annotations["io.containerd.image.name"] = plan.ImageName
	}
	if plan.Tag != "" {
		annotations["org.opencontainers.image.ref.name"] = plan.Tag
	}
	platform := v1.Platform{OS: "linux", Architecture: plan.Architecture, Variant: plan.Variant}
	if err := p.AppendImage(img, layout.WithAnnotations(annotations), layout.WithPlatform(platform)); err != nil {
		return err
	}
	return tarDir(dir, plan.Out, created)
}

// tarDir packs a directory of regular files (an OCI layout) into a tar, sorted, with fixed metadata.
func tarDir(dir, out string, mtime time.Time) error {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return err
	}
	sort.Strings(files)
	tmp := out + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	for _, rel := range files {
		for _, d := range parentDirs(rel) {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			h := &tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: mtime}
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		}
		if err := addFile(tw, filepath.Join(dir, rel), rel, mtime); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

func parentDirs(rel string) []string {
	var dirs []string
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		dirs = append(dirs, strings.Join(parts[:i], "/"))
	}
	return dirs
}

func addFile(tw *tar.Writer, file, name string, mtime time.Time) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: st.Size(), ModTime: mtime}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}
