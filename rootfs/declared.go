package rootfs

import (
	"path"

	"github.com/imaforge/imaforge/manifest"
)

var declaredTypes = map[manifest.EntryType]Type{
	manifest.TypeDir:     TypeDir,
	manifest.TypeFile:    TypeReg,
	manifest.TypeSymlink: TypeSymlink,
	manifest.TypeChar:    TypeChar,
	manifest.TypeBlock:   TypeBlock,
	manifest.TypeFifo:    TypeFifo,
	manifest.TypeSocket:  TypeSocket,
}

// defaultMode is the mode of a declared entry that sets none.
func defaultMode(t Type) uint32 {
	switch t {
	case TypeDir:
		return 0o755
	case TypeSymlink:
		return 0o777
	case TypeChar, TypeBlock:
		return 0o600
	}
	return 0o644
}

// declared adds m.Entries[i]. A declared entry replaces what a source put
// at its path (a directory keeps its children); a different type is an
// error. Unset uid and gid take image.owner, or 0.
func (b *builder) declared(i int) error {
	d := &b.m.Entries[i]
	o := &Origin{Kind: FromEntry, Index: i, Pos: d.Pos}
	if err := b.implyDir(path.Dir(d.Path), &Origin{Kind: FromImplied, Index: i, Pos: d.Pos}); err != nil {
		return err
	}
	t := declaredTypes[d.Type]
	e := b.newEntry(d.Path, t, o)
	e.Mode = defaultMode(t)
	e.SetXattrs(d.Xattrs)
	e.UID, e.GID, _ = b.owner()
	if d.Mode != nil {
		e.Mode = uint32(*d.Mode)
	}
	if d.UID != nil {
		e.UID = *d.UID
	}
	if d.GID != nil {
		e.GID = *d.GID
	}
	switch t {
	case TypeSymlink:
		e.SetTarget(d.Target)
		e.Size = int64(len(d.Target))
	case TypeChar, TypeBlock:
		e.SetDev(*d.Major, *d.Minor)
	case TypeReg:
		var c []byte
		if d.Content != nil {
			c = []byte(*d.Content)
		}
		e.Content, e.Size = inline(c), int64(len(c))
	}
	return b.put(e, nil)
}

// overrides applies m.Overrides to every entry whose path matches. Two
// overrides that set the same attribute of one path to different values
// are an error naming both.
func (b *builder) overrides() error {
	ovs := b.m.Overrides
	if len(ovs) == 0 {
		return nil
	}
	matched := make([]bool, len(ovs))
	for i := range b.entries.len() {
		e := b.entries.at(int32(i))
		modeBy, uidBy, gidBy := -1, -1, -1
		xattrBy := map[string]int{}
		for j := range ovs {
			ov := &ovs[j]
			if !ov.Match.Match(e.Path) {
				continue
			}
			matched[j] = true
			if ov.Mode != nil {
				if modeBy >= 0 && e.Mode != uint32(*ov.Mode) {
					return b.conflict(e.Path, "mode", modeBy, j)
				}
				if e.Type != TypeSymlink {
					e.Mode, modeBy = uint32(*ov.Mode), j
				}
			}
			if ov.UID != nil {
				if uidBy >= 0 && e.UID != *ov.UID {
					return b.conflict(e.Path, "uid", uidBy, j)
				}
				e.UID, uidBy = *ov.UID, j
			}
			if ov.GID != nil {
				if gidBy >= 0 && e.GID != *ov.GID {
					return b.conflict(e.Path, "gid", gidBy, j)
				}
				e.GID, gidBy = *ov.GID, j
			}
			for _, x := range ov.Xattrs {
				if k, ok := xattrBy[x.Name]; ok {
					if v, _ := e.Xattrs().Get(x.Name); string(v) != string(x.Value) {
						return b.conflict(e.Path, "xattr "+x.Name, k, j)
					}
				}
				xattrBy[x.Name] = j
				e.SetXattrs(setXattr(e.Xattrs(), x))
			}
		}
	}
	for j, ok := range matched {
		if ok {
			continue
		}
		err := b.m.Errorf(ovs[j].FieldPos("match"), ErrUnmatchedOverride, "overrides[%d] %s", j, ovs[j].Match)
		if b.opts.Strict {
			return err
		}
		b.warn = append(b.warn, err)
	}
	return nil
}

func (b *builder) conflict(p, attr string, first, second int) error {
	ovs := b.m.Overrides
	return b.m.Errorf(ovs[second].Pos, ErrOverrideConflict, "%s: overrides[%d] (line %d) and overrides[%d] (line %d) set different %s",
		p, first, ovs[first].Pos.Line, second, ovs[second].Pos.Line, attr)
}

// setXattr returns xs with x set, kept sorted by name; xs is copied, as
// hard-linked entries may share it.
func setXattr(xs manifest.Xattrs, x manifest.Xattr) manifest.Xattrs {
	out := make(manifest.Xattrs, 0, len(xs)+1)
	done := false
	for _, a := range xs {
		switch {
		case a.Name == x.Name:
			out = append(out, x)
			done = true
			continue
		case !done && a.Name > x.Name:
			out = append(out, x)
			done = true
		}
		out = append(out, a)
	}
	if !done {
		out = append(out, x)
	}
	return out
}
