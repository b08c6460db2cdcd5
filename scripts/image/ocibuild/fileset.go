package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
)

// node is one path of a layer: a directory, a regular file (with its bytes) or a symlink.
type node struct {
	typ      byte // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode     int64
	data     []byte
	linkname string
}

// fileset is a layer's content by absolute path. Ownership and times are not kept: every entry
// is written as root's, at the image's creation time.
type fileset map[string]*node

func (fs fileset) add(p string, n *node) error {
	if old, ok := fs[p]; ok {
		if old.typ == n.typ && old.mode == n.mode && old.linkname == n.linkname && bytes.Equal(old.data, n.data) {
			return nil
		}
		return fmt.Errorf("%s is given twice, differently", p)
	}
	fs[p] = n
	return nil
}

// addEntry adds one plan entry's files.
func (fs fileset) addEntry(e Entry) error {
	switch {
	case e.Tar != "":
		return fs.addTar(e)
	case e.File != "":
		data, err := os.ReadFile(e.File)
		if err != nil {
			return err
		}
		return fs.add(e.Path, &node{typ: tar.TypeReg, mode: e.Mode, data: data})
	case e.Text != nil:
		return fs.add(e.Path, &node{typ: tar.TypeReg, mode: e.Mode, data: []byte(*e.Text)})
	case e.Dir:
		return fs.add(e.Path, &node{typ: tar.TypeDir, mode: e.Mode})
	}
	return fmt.Errorf("an entry with no source (tar, file, text or dir): %+v", e)
}

func under(p, prefix string) bool { return p == prefix || strings.HasPrefix(p, prefix+"/") }

func anyUnder(p string, prefixes []string) bool {
	for _, prefix := range prefixes {
		if under(p, prefix) {
			return true
		}
	}
	return false
}

// selected says whether a tar source keeps path p (after Strip), per Include, Exclude and Keep.
func (e Entry) selected(p string) bool {
	if len(e.Include) > 0 && !anyUnder(p, e.Include) {
		return false
	}
	if !anyUnder(p, e.Exclude) {
		return true
	}
	for _, pattern := range e.Keep {
		if ok, _ := path.Match(pattern, p); ok {
			return true
		}
	}
	return false
}

// openTar opens a tar stream, gzip-compressed or not.
func openTar(file string) (*tar.Reader, io.Closer, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReader(f)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, nil, err
		}
		return tar.NewReader(gz), f, nil
	}
	return tar.NewReader(br), f, nil
}

// addTar adds the selected entries of a tar source. Hard links become copies of their target (a
// layer must not link to a file another source may not have kept).
func (fs fileset) addTar(e Entry) error {
	tr, closer, err := openTar(e.Tar)
	if err != nil {
		return err
	}
	defer closer.Close()
	taken := map[string]*node{} // by the name in the tar, for hard links
	sums := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.Tar, err)
		}
		p := path.Clean("/" + h.Name)
		if e.Strip != "" {
			if !under(p, e.Strip) {
				continue
			}
			p = path.Clean("/" + strings.TrimPrefix(p, e.Strip))
		}
		if p == "/" || !e.selected(p) {
			continue
		}
		if to, ok := e.Rename[p]; ok {
			p = to
		}
		n, err := nodeFromTar(h, tr, taken)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", e.Tar, h.Name, err)
		}
		taken[path.Clean("/"+h.Name)] = n
		if err := fs.add(p, n); err != nil {
			return err
		}
		if n.typ == tar.TypeReg {
			sum := md5.Sum(n.data)
			sums[strings.TrimPrefix(p, "/")] = hex.EncodeToString(sum[:])
		}
	}
	if e.Md5sums == "" {
		return nil
	}
	return fs.add(e.Md5sums, &node{typ: tar.TypeReg, mode: 0o644, data: md5sumsFile(sums)})
}

func nodeFromTar(h *tar.Header, tr *tar.Reader, taken map[string]*node) (*node, error) {
	mode := h.Mode & 0o7777
	switch h.Typeflag {
	case tar.TypeDir:
		return &node{typ: tar.TypeDir, mode: mode}, nil
	case tar.TypeSymlink:
		return &node{typ: tar.TypeSymlink, mode: 0o777, linkname: h.Linkname}, nil
	case tar.TypeReg:
		data, err := io.ReadAll(tr)
		return &node{typ: tar.TypeReg, mode: mode, data: data}, err
	case tar.TypeLink:
		target, ok := taken[path.Clean("/"+h.Linkname)]
		if !ok || target.typ != tar.TypeReg {
			return nil, fmt.Errorf("hard link to %s, which is not a file kept before it", h.Linkname)
		}
		return &node{typ: tar.TypeReg, mode: mode, data: target.data}, nil
	}
	return nil, fmt.Errorf("unsupported tar entry type %q", h.Typeflag)
}

// md5sumsFile is a dpkg md5sums file: "<md5>  <path without leading slash>" per line, sorted.
func md5sumsFile(sums map[string]string) []byte {
	paths := make([]string, 0, len(sums))
	for p := range sums {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var b strings.Builder
	for _, p := range paths {
		fmt.Fprintf(&b, "%s  %s\n", sums[p], p)
	}
	return []byte(b.String())
}

// withParents adds every missing parent directory (0755), so a layer extracts the same on any
// runtime whatever the lower layers hold.
func (fs fileset) withParents() {
	for p := range fs {
		for dir := path.Dir(p); dir != "/"; dir = path.Dir(dir) {
			if _, ok := fs[dir]; ok {
				continue
			}
			fs[dir] = &node{typ: tar.TypeDir, mode: 0o755}
		}
	}
}

// sortedPaths is the order entries are written in: by path, so a parent comes before its children.
func (fs fileset) sortedPaths() []string {
	paths := make([]string, 0, len(fs))
	for p := range fs {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	return paths
}
