package squashfs_test

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"log"

	"github.com/imaforge/imaforge/squashfs"
)

// Open an image made by mksquashfs, walk it and hash a file.
func ExampleOpenReader() {
	r, err := squashfs.OpenReader("../testdata/squashfs/tiny-zstd.sqsh")
	if err != nil {
		log.Fatal(err)
	}
	defer r.Close()

	err = r.Walk(".", func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		name := "/" + p
		if p == "." {
			name = "/"
		}
		s := fi.Sys().(*squashfs.InodeInfo)
		fmt.Println(squashfs.LongLine(name, fi), "inode", s.InodeNumber, "links", s.Nlink)
		if fi.IsDir() && p != "." {
			return fs.SkipDir // only the top level here
		}
		return nil
	})
	if err != nil {
		log.Fatal(err)
	}

	f, err := r.Open("l") // a symbolic link to d/f, followed
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("l: %d bytes, sha256 %x\n", n, h.Sum(nil)[:8])

	x, err := r.Xattrs("d/f")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("d/f: %s, %d bytes\n", x[0].Name, len(x[0].Value))
	// Output:
	// drwxr-xr-x 0/0                      88 1970-01-01 00:00 / inode 108 links 3
	// -rw-r--r-- 0/0                    9000 1970-01-01 00:00 /blocks inode 1 links 1
	// crw-r--r-- 0/0                   1,  3 1970-01-01 00:00 /c inode 2 links 1
	// drwxr-xr-x 0/0                    8628 1970-01-01 00:00 /d inode 3 links 2
	// -rw-r--r-- 0/0                       5 1970-01-01 00:00 /h inode 104 links 2
	// lrwxrwxrwx 0/0                       3 1970-01-01 00:00 /l -> d/f inode 105 links 1
	// prw-r--r-- 0/0                       0 1970-01-01 00:00 /p inode 106 links 1
	// -rw-r--r-- 0/0                   12288 1970-01-01 00:00 /sparse inode 107 links 1
	// l: 5 bytes, sha256 36d25d3d80f84316
	// d/f: user.a, 300 bytes
}
