package squashfs

import (
	"fmt"
)

// Xattr is one extended attribute: its full name, prefix included
// ("security.ima", "user.comment", "trusted.overlay.opaque"), and its value.
type Xattr struct {
	Name  string
	Value []byte
}

// readXattrs returns the xattr set with xattr id id (nil for InvalidXattr),
// in stored order. The id indexes the xattr id table (XattrID: a reference to
// the first key, the pair count and their size); the pairs are XattrKey and
// XattrValue records in the xattr table, a value being either inline or,
// with XattrValueOOL, a u64 reference to a value stored once elsewhere in
// the table (kernel fs/squashfs/xattr.c, xattr_id.c).
func (z *Reader) readXattrs(id uint32) ([]Xattr, error) {
	if id == InvalidXattr {
		return nil, nil
	}
	b, err := z.readRecord(&z.xattrIDs, uint64(id))
	if err != nil {
		return nil, err
	}
	var x XattrID
	if _, err := x.decode(b, int64(z.xattrIDs.listOff)); err != nil {
		return nil, err
	}
	if x.Count > maxXattrCount {
		return nil, &FormatError{Off: int64(z.xattrIDs.listOff), Msg: fmt.Sprintf("xattr id %d: more pairs than the reader's limit of %d", id, maxXattrCount), Val: x.Count}
	}
	c, err := z.cursorAt(z.xattrTable, x.Ref, "xattr")
	if err != nil {
		return nil, err
	}
	out := make([]Xattr, 0, min(x.Count, 64))
	var used uint64
	var kb []byte
	for range x.Count {
		at := int64(c.pos)
		kb = kb[:0]
		if kb, err = c.appendN(kb, 4); err != nil {
			return nil, err
		}
		if kb, err = c.appendN(kb, uint64(le.Uint16(kb[2:]))); err != nil {
			return nil, err
		}
		var k XattrKey
		if _, err := k.decode(kb, at); err != nil {
			return nil, err
		}
		var vb [8]byte
		if err := c.read(vb[:4]); err != nil {
			return nil, err
		}
		vsize := le.Uint32(vb[:])
		var v []byte
		if k.Type&XattrValueOOL != 0 {
			if vsize != 8 {
				return nil, &FormatError{Off: at, Msg: "out-of-line xattr value reference is not 8 bytes", Val: vsize}
			}
			if err := c.read(vb[:]); err != nil {
				return nil, err
			}
			if v, err = z.readXattrValue(le.Uint64(vb[:])); err != nil {
				return nil, err
			}
		} else {
			if vsize > maxXattrValue {
				return nil, &FormatError{Off: at, Msg: "xattr value larger than 64 KiB", Val: vsize}
			}
			if v, err = c.appendN(nil, uint64(vsize)); err != nil {
				return nil, err
			}
		}
		used += uint64(len(kb) + len(v))
		if used > maxXattrBytes {
			return nil, &FormatError{Off: at, Msg: fmt.Sprintf("xattr id %d: more than the reader's limit of %d bytes", id, maxXattrBytes), Val: used}
		}
		if v == nil {
			v = []byte{}
		}
		out = append(out, Xattr{Name: k.FullName(), Value: v})
	}
	return out, nil
}

// readXattrValue reads an XattrValue record at ref in the xattr table.
func (z *Reader) readXattrValue(ref uint64) ([]byte, error) {
	c, err := z.cursorAt(z.xattrTable, ref, "xattr value")
	if err != nil {
		return nil, err
	}
	at := int64(c.pos)
	b, err := c.appendN(nil, 4)
	if err != nil {
		return nil, err
	}
	n := le.Uint32(b)
	if n > maxXattrValue {
		return nil, &FormatError{Off: at, Msg: "xattr value larger than 64 KiB", Val: n}
	}
	if b, err = c.appendN(b, uint64(n)); err != nil {
		return nil, err
	}
	var v XattrValue
	if _, err := v.decode(b, at); err != nil {
		return nil, err
	}
	return v.Value, nil
}
