package policy

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
)

// Action is the first word of a rule.
type Action uint16

// Actions, with the kernel's values (ima_policy.c MEASURE ... DONT_HASH).
const (
	ActionNone         Action = 0
	ActionMeasure      Action = 0x0001
	ActionDontMeasure  Action = 0x0002
	ActionAppraise     Action = 0x0004
	ActionDontAppraise Action = 0x0008
	ActionAudit        Action = 0x0040
	ActionHash         Action = 0x0100
	ActionDontHash     Action = 0x0200
)

var actionNames = []struct {
	a    Action
	name string
}{
	{ActionMeasure, "measure"},
	{ActionDontMeasure, "dont_measure"},
	{ActionAppraise, "appraise"},
	{ActionDontAppraise, "dont_appraise"},
	{ActionAudit, "audit"},
	{ActionHash, "hash"},
	{ActionDontHash, "dont_hash"},
}

func (a Action) String() string {
	for _, n := range actionNames {
		if n.a == a {
			return n.name
		}
	}
	return fmt.Sprintf("Action(%#x)", uint16(a))
}

// Func is the hook named by func=. FuncNone means the rule has no func=.
type Func uint8

// Hooks, in the kernel's enum ima_hooks order (ima.h __ima_hooks).
const (
	FuncNone Func = iota
	FuncFileCheck
	FuncMmapCheck
	FuncMmapCheckReqprot
	FuncBprmCheck
	FuncCredsCheck
	FuncPostSetattr
	FuncModuleCheck
	FuncFirmwareCheck
	FuncKexecKernelCheck
	FuncKexecInitramfsCheck
	FuncPolicyCheck
	FuncKexecCmdline
	FuncKeyCheck
	FuncCriticalData
	FuncSetxattrCheck
)

var funcNames = [...]string{
	FuncNone:                "NONE",
	FuncFileCheck:           "FILE_CHECK",
	FuncMmapCheck:           "MMAP_CHECK",
	FuncMmapCheckReqprot:    "MMAP_CHECK_REQPROT",
	FuncBprmCheck:           "BPRM_CHECK",
	FuncCredsCheck:          "CREDS_CHECK",
	FuncPostSetattr:         "POST_SETATTR",
	FuncModuleCheck:         "MODULE_CHECK",
	FuncFirmwareCheck:       "FIRMWARE_CHECK",
	FuncKexecKernelCheck:    "KEXEC_KERNEL_CHECK",
	FuncKexecInitramfsCheck: "KEXEC_INITRAMFS_CHECK",
	FuncPolicyCheck:         "POLICY_CHECK",
	FuncKexecCmdline:        "KEXEC_CMDLINE",
	FuncKeyCheck:            "KEY_CHECK",
	FuncCriticalData:        "CRITICAL_DATA",
	FuncSetxattrCheck:       "SETXATTR_CHECK",
}

func (f Func) String() string {
	if int(f) < len(funcNames) {
		return funcNames[f]
	}
	return fmt.Sprintf("Func(%d)", uint8(f))
}

// Mask is the access mask of mask= (the kernel's MAY_* values).
type Mask uint8

// Access masks (include/linux/fs.h).
const (
	MayExec   Mask = 0x1
	MayWrite  Mask = 0x2
	MayRead   Mask = 0x4
	MayAppend Mask = 0x8
)

func (m Mask) String() string {
	switch m {
	case MayExec:
		return "MAY_EXEC"
	case MayWrite:
		return "MAY_WRITE"
	case MayRead:
		return "MAY_READ"
	case MayAppend:
		return "MAY_APPEND"
	}
	var parts []string
	for _, b := range []Mask{MayExec, MayWrite, MayRead, MayAppend} {
		if m&b != 0 {
			parts = append(parts, b.String())
		}
	}
	if len(parts) == 0 {
		return "0"
	}
	return strings.Join(parts, "|")
}

// Op is the comparison of a uid/gid condition: '=', '<' or '>'.
type Op byte

// Comparison operators.
const (
	OpEq Op = '='
	OpLt Op = '<'
	OpGt Op = '>'
)

// IDCond is a uid=, euid=, gid=, egid=, fowner= or fgroup= condition.
type IDCond struct {
	Op Op
	ID uint32
	// Effective selects euid/egid rather than uid/gid. The kernel keeps
	// one value for uid and euid (and one for gid and egid), so a rule has
	// at most one of each pair.
	Effective bool
}

// Match reports whether id satisfies the condition.
func (c *IDCond) Match(id uint32) bool {
	switch c.Op {
	case OpLt:
		return id < c.ID
	case OpGt:
		return id > c.ID
	}
	return id == c.ID
}

// LSM condition slots, in the kernel's lsm_rule_types order.
const (
	LSMObjUser = iota
	LSMObjRole
	LSMObjType
	LSMSubjUser
	LSMSubjRole
	LSMSubjType
	numLSM
)

var lsmKeys = [numLSM]string{"obj_user", "obj_role", "obj_type", "subj_user", "subj_role", "subj_type"}

// AppraiseType is the signature requirement of appraise_type=.
type AppraiseType uint8

// Appraise types.
const (
	AppraiseAny          AppraiseType = iota // no appraise_type: a digest (hash) or a signature
	AppraiseImaSig                           // imasig: a security.ima signature is required
	AppraiseImaSigModsig                     // imasig|modsig: an xattr or an appended (module-style) signature
	AppraiseSigV3                            // sigv3: signature format v3 over the fs-verity digest
)

func (t AppraiseType) String() string {
	switch t {
	case AppraiseImaSig:
		return "imasig"
	case AppraiseImaSigModsig:
		return "imasig|modsig"
	case AppraiseSigV3:
		return "sigv3"
	}
	return ""
}

// RequiresSignature reports whether a plain digest in security.ima fails.
func (t AppraiseType) RequiresSignature() bool { return t != AppraiseAny }

// Pos is a place in a policy file: 1-based line and byte column.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	switch {
	case p.File == "" && p.Line == 0:
		return "-"
	case p.Line == 0:
		return p.File
	case p.Col == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Rule is one parsed policy rule. Optional conditions are nil or empty when
// absent. [Rule.String] renders it in a canonical order that the kernel
// parses back to the same rule.
type Rule struct {
	Pos    Pos // where the rule starts
	Action Action

	Func    Func // FuncNone: no func=
	Mask    Mask // 0: no mask=
	MaskAny bool // mask=^MAY_...: any of the bits (IMA_INMASK) instead of equality

	FSMagic *uint64
	FSName  string
	FSUUID  *[16]byte

	UID    *IDCond // uid= or euid=
	GID    *IDCond // gid= or egid=
	FOwner *IDCond
	FGroup *IDCond

	// LSM holds the obj_user ... subj_type labels, indexed by LSMObjUser...
	LSM [numLSM]string

	Keyrings []string // keyrings=a|b (func=KEY_CHECK)
	Labels   []string // label=a|b (func=CRITICAL_DATA)
	PCR      *int
	Template string

	DigestVerity   bool // digest_type=verity
	AppraiseType   AppraiseType
	AppraiseFlag   string   // raw value of appraise_flag= ("check_blacklist")
	AppraiseAlgos  []string // appraise_algos=sha256,sha512
	PermitDirectIO bool
}

// HasLSM reports whether the rule has any LSM condition.
func (r *Rule) HasLSM() bool {
	for _, s := range r.LSM {
		if s != "" {
			return true
		}
	}
	return false
}

// String renders the rule as one policy line, without a newline. The order
// is fixed: action, conditions, then options, with digest_type= before
// appraise_type= (the kernel rejects appraise_type=sigv3 unless
// digest_type=verity came first, although its own policy listing prints them
// the other way round).
func (r *Rule) String() string {
	var b strings.Builder
	b.WriteString(r.Action.String())
	kv := func(k, v string) {
		b.WriteByte(' ')
		b.WriteString(k)
		b.WriteString(v)
	}
	if r.Func != FuncNone {
		kv("func=", r.Func.String())
	}
	if r.Mask != 0 {
		if r.MaskAny {
			kv("mask=^", r.Mask.String())
		} else {
			kv("mask=", r.Mask.String())
		}
	}
	if r.FSMagic != nil {
		kv("fsmagic=", "0x"+strconv.FormatUint(*r.FSMagic, 16))
	}
	if r.FSName != "" {
		kv("fsname=", r.FSName)
	}
	if r.FSUUID != nil {
		kv("fsuuid=", FormatUUID(*r.FSUUID))
	}
	id := func(name, ename string, c *IDCond) {
		if c == nil {
			return
		}
		n := name
		if c.Effective {
			n = ename
		}
		kv(n+string(rune(c.Op)), strconv.FormatUint(uint64(c.ID), 10))
	}
	id("uid", "euid", r.UID)
	id("gid", "egid", r.GID)
	id("fowner", "fowner", r.FOwner)
	id("fgroup", "fgroup", r.FGroup)
	for i, s := range r.LSM {
		if s != "" {
			kv(lsmKeys[i]+"=", s)
		}
	}
	if len(r.Keyrings) > 0 {
		kv("keyrings=", strings.Join(r.Keyrings, "|"))
	}
	if len(r.Labels) > 0 {
		kv("label=", strings.Join(r.Labels, "|"))
	}
	if r.PCR != nil {
		kv("pcr=", strconv.Itoa(*r.PCR))
	}
	if r.Template != "" {
		kv("template=", r.Template)
	}
	if r.DigestVerity {
		kv("digest_type=", "verity")
	}
	if r.AppraiseType != AppraiseAny {
		kv("appraise_type=", r.AppraiseType.String())
	}
	if r.AppraiseFlag != "" {
		kv("appraise_flag=", r.AppraiseFlag)
	}
	if len(r.AppraiseAlgos) > 0 {
		kv("appraise_algos=", strings.Join(r.AppraiseAlgos, ","))
	}
	if r.PermitDirectIO {
		b.WriteString(" permit_directio")
	}
	return b.String()
}

// FormatUUID renders a filesystem UUID as the kernel prints it (%pU).
func FormatUUID(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// parseUUID mirrors lib/uuid.c uuid_parse: 36 characters, dashes at 8, 13,
// 18 and 23, hex digits elsewhere. Like the kernel it does not look past the
// 36th character; trailing reports whether anything follows.
func parseUUID(s string) (u [16]byte, trailing bool, ok bool) {
	if len(s) < 36 {
		return u, false, false
	}
	j := 0
	for i := 0; i < 36; i++ {
		c := s[i]
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return u, false, false
			}
			continue
		}
		if !isHex(c) {
			return u, false, false
		}
		if j%2 == 0 {
			u[j/2] = unhex(c) << 4
		} else {
			u[j/2] |= unhex(c)
		}
		j++
	}
	return u, len(s) > 36, true
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
