package policy

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Parse parses an IMA policy with the grammar of the newest supported
// kernel series ([V6_12]) and returns its rules. Blank lines and lines whose
// first non-blank character is '#' are skipped, as the kernel does. When
// the kernel would reject the policy, the error is an [ErrorList] naming
// every problem as name:line:col; the rules that did parse are returned too.
func Parse(name string, data []byte) ([]Rule, error) {
	return ParseFor(name, data, V6_12)
}

// ParseFor is [Parse] with the grammar of kernel series v.
func ParseFor(name string, data []byte, v Version) ([]Rule, error) {
	rules, ds := check(name, data, Target{Version: v})
	return rules, Errors(ds)
}

// Lint checks a policy file against the grammar of kernel series v and
// returns every problem found, errors and warnings, in file order. The
// policy loads on such a kernel if and only if no diagnostic has severity
// [Error] (given CONFIG_IMA_APPRAISE_MODSIG, CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS
// and the hash algorithms named in appraise_algos= are built in, and LSM
// labels are known to the running LSM; see docs/policy.md).
func Lint(name string, data []byte, v Version) []Diagnostic {
	_, ds := check(name, data, Target{Version: v})
	return ds
}

// LintTarget is [Lint] for a kernel whose build options are (partly) known.
func LintTarget(name string, data []byte, t Target) []Diagnostic {
	_, ds := check(name, data, t)
	return ds
}

// ParseRule parses a single rule line with the grammar of series v.
func ParseRule(line string, v Version) (Rule, error) {
	if strings.ContainsAny(line, "\n") {
		return Rule{}, fmt.Errorf("policy rule %q: %w: more than one line", line, ErrSyntax)
	}
	rules, ds := check("", []byte(line), Target{Version: v})
	if err := Errors(ds); err != nil {
		return Rule{}, err
	}
	if len(rules) != 1 {
		return Rule{}, fmt.Errorf("policy rule %q: %w: no rule", line, ErrSyntax)
	}
	return rules[0], nil
}

func check(name string, data []byte, t Target) ([]Rule, []Diagnostic) {
	v := t.Version
	if !v.Valid() {
		v = DefaultVersion
	}
	p := &parser{v: v, cfg: t.Config, file: name}
	var rules []Rule
	lineno := 0
	for len(data) > 0 {
		lineno++
		var line []byte
		if i := indexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if i := indexByte(line, 0); i >= 0 {
			// ima_read_policy splits with strsep, which stops at a NUL:
			// whatever follows is never read.
			p.errorf(lineno, i+1, "NUL byte: the kernel stops reading the policy here")
			line = line[:i]
			data = nil
		}
		if r, ok := p.line(string(line), lineno); ok {
			rules = append(rules, r)
		}
	}
	if len(rules) == 0 && !p.hadError {
		// ima_release_policy: ima_check_policy fails on an empty rule list.
		p.errorf(max(lineno, 1), 1, "policy has no rules: the kernel rejects an empty policy")
	}
	sort.SliceStable(p.diags, func(i, j int) bool {
		a, b := p.diags[i].Pos, p.diags[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	return rules, p.diags
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

type parser struct {
	v        Version
	cfg      Config
	file     string
	diags    []Diagnostic
	hadError bool
}

func (p *parser) errorf(line, col int, format string, args ...any) {
	p.hadError = true
	p.diags = append(p.diags, Diagnostic{Pos{p.file, line, col}, SeverityError, fmt.Sprintf(format, args...)})
}

func (p *parser) warnf(line, col int, format string, args ...any) {
	p.diags = append(p.diags, Diagnostic{Pos{p.file, line, col}, SeverityWarning, fmt.Sprintf(format, args...)})
}

// token is one word of a rule with its 1-based byte column.
type token struct {
	text string
	col  int
}

// ruleState is what ima_parse_rule keeps in struct ima_rule_entry besides
// the values: the flags and where each came from.
type ruleState struct {
	r         Rule
	flags     flag
	flagCol   map[flag]int
	actionCol int
	lsmCol    [numLSM]int
	pcrSeen   bool
	// tokens tried but rejected, to avoid cascading messages
	unknownTok, algosTried, appraiseTypeTried bool
}

func (s *ruleState) set(f flag, col int) {
	s.flags |= f
	if _, ok := s.flagCol[f]; !ok {
		s.flagCol[f] = col
	}
}

// line parses one line as ima_parse_add_rule does. ok is false for blank
// lines and comments.
func (p *parser) line(line string, n int) (Rule, bool) {
	if i := strings.IndexByte(line, '\r'); i >= 0 {
		p.errorf(n, i+1, "carriage return (CRLF line ending): the kernel reads it as part of a word")
		line = strings.ReplaceAll(line, "\r", " ")
	}
	// Leading blanks: strspn(p, " \t").
	lead := len(line) - len(strings.TrimLeft(line, " \t"))
	rest := line[lead:]
	if rest == "" || rest[0] == '#' {
		return Rule{}, false
	}
	// Tokens: strsep(&rule, " \t"), empty tokens skipped.
	var toks []token
	start := -1
	for i := 0; i <= len(line); i++ {
		if i == len(line) || line[i] == ' ' || line[i] == '\t' {
			if start >= 0 {
				toks = append(toks, token{line[start:i], start + 1})
				start = -1
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	s := &ruleState{flagCol: map[flag]int{}}
	s.r.Pos = Pos{p.file, n, lead + 1}
	errsBefore := p.errorCount()
	for _, t := range toks {
		if strings.HasPrefix(t.text, "#") {
			p.errorf(n, t.col, "comment after a rule: the kernel only skips lines that start with #")
			s.unknownTok = true
			break
		}
		p.token(s, t, n)
	}
	p.validate(s, n)
	clean := p.errorCount() == errsBefore
	r := &s.r
	if clean && r.Func == FuncNone && r.Action == ActionAppraise && r.AppraiseType == AppraiseAny && r.FOwner == nil &&
		r.FSMagic == nil && r.FSName == "" && r.FSUUID == nil && !r.HasLSM() && r.Mask == 0 {
		p.warnf(n, r.Pos.Col, "appraise rule without func= or conditions appraises every file on every filesystem")
	}
	return s.r, clean
}

func (p *parser) errorCount() int {
	c := 0
	for _, d := range p.diags {
		if d.Severity == SeverityError {
			c++
		}
	}
	return c
}

// split divides a token as match_token would against the policy_tokens
// patterns: a bare keyword, or key, operator and a non-empty value.
func split(text string) (key string, op byte, value string) {
	i := strings.IndexAny(text, "=<>")
	if i < 0 {
		return text, 0, ""
	}
	return text[:i], text[i], text[i+1:]
}

func (p *parser) token(s *ruleState, t token, n int) {
	key, op, val := split(t.text)
	kw, known := keywords[key]
	if !known || (op == 0) != (kw.ops == "") || (op != 0 && !strings.ContainsRune(kw.ops, rune(op))) {
		p.unknown(s, t, key, op, n)
		return
	}
	if kw.since > p.v {
		p.errorf(n, t.col, "%q is not accepted by Linux %s (added in %s)", tokenPattern(key, op), p.v, kw.added)
		return
	}
	if op != 0 && val == "" {
		// match_token's %s does not match an empty string.
		p.errorf(n, t.col, "%q has no value", t.text)
		return
	}
	r := &s.r
	switch key {
	case "measure", "dont_measure", "appraise", "dont_appraise", "audit", "hash", "dont_hash":
		var a Action
		for _, an := range actionNames {
			if an.name == key {
				a = an.a
			}
		}
		if r.Action != ActionNone {
			p.errorf(n, t.col, "second action %q: the rule already has %q", key, r.Action)
		}
		r.Action = a
		if s.actionCol == 0 {
			s.actionCol = t.col
		}
	case "permit_directio":
		s.set(fPermitDirectio, t.col)
		r.PermitDirectIO = true
	case "func":
		if r.Func != FuncNone {
			p.errorf(n, t.col, "second func=: the rule already has func=%s", r.Func)
			return
		}
		fv, ok := funcValues[val]
		if ok && fv.f == FuncKeyCheck && p.cfg.AsymmetricKeys == Disabled {
			p.errorf(n, t.col, "func=KEY_CHECK needs CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS, which this kernel lacks")
			return
		}
		switch {
		case !ok:
			p.errorf(n, t.col, "unknown func=%s (want one of %s)", val, strings.Join(p.funcList(), ", "))
		case fv.since > p.v:
			p.errorf(n, t.col, "func=%s is not accepted by Linux %s (added in %s)", val, p.v, fv.added)
		default:
			r.Func = fv.f
			s.set(fFunc, t.col)
		}
	case "mask":
		if r.Mask != 0 {
			p.errorf(n, t.col, "second mask=: the rule already has one")
			return
		}
		v := strings.TrimPrefix(val, "^")
		var m Mask
		switch v {
		case "MAY_EXEC":
			m = MayExec
		case "MAY_WRITE":
			m = MayWrite
		case "MAY_READ":
			m = MayRead
		case "MAY_APPEND":
			m = MayAppend
		default:
			p.errorf(n, t.col, "unknown mask=%s (want MAY_EXEC, MAY_WRITE, MAY_READ or MAY_APPEND, optionally after ^)", val)
			return
		}
		r.Mask = m
		if v != val {
			r.MaskAny = true
			s.set(fInMask, t.col)
		} else {
			s.set(fMask, t.col)
		}
	case "fsmagic":
		if r.FSMagic != nil && *r.FSMagic != 0 {
			p.errorf(n, t.col, "second fsmagic=: the rule already has fsmagic=0x%x", *r.FSMagic)
			return
		}
		m, err := kstrtoul(val, 16, 64)
		if err != nil {
			p.errorf(n, t.col, "fsmagic=%s: %v (want a hexadecimal number such as 0x73717368)", val, err)
			return
		}
		r.FSMagic = &m
		s.set(fFSMagic, t.col)
	case "fsname":
		if r.FSName != "" {
			p.warnf(n, t.col, "second fsname=: the kernel keeps only the last (%s)", val)
		}
		r.FSName = val
		s.set(fFSName, t.col)
	case "fsuuid":
		if r.FSUUID != nil && *r.FSUUID != ([16]byte{}) {
			p.errorf(n, t.col, "second fsuuid=: the rule already has one")
			return
		}
		u, trailing, ok := parseUUID(val)
		if !ok {
			p.errorf(n, t.col, "fsuuid=%s is not a UUID (want 8-4-4-4-12 hex digits)", val)
			return
		}
		if trailing {
			p.warnf(n, t.col, "fsuuid=%s: the kernel ignores what follows the 36th character", val)
		}
		r.FSUUID = &u
		s.set(fFSUUID, t.col)
	case "uid", "euid", "gid", "egid", "fowner", "fgroup":
		p.idCond(s, t, n, key, op, val)
	case "obj_user", "obj_role", "obj_type", "subj_user", "subj_role", "subj_type":
		i := 0
		for j, k := range lsmKeys {
			if k == key {
				i = j
			}
		}
		if r.LSM[i] != "" {
			p.errorf(n, t.col, "second %s=: the rule already has %s=%s", key, key, r.LSM[i])
			return
		}
		r.LSM[i] = val
		s.lsmCol[i] = t.col
		p.warnf(n, t.col, "%s= needs an LSM that knows %q: without one the kernel rejects the rule when the policy replaces the built-in one, and never matches it later", key, val)
	case "keyrings", "label":
		if key == "keyrings" && p.cfg.AsymmetricKeys == Disabled {
			p.errorf(n, t.col, "keyrings= needs CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS, which this kernel lacks")
			return
		}
		list := &r.Keyrings
		f := fKeyrings
		if key == "label" {
			list, f = &r.Labels, fLabel
		}
		if len(*list) > 0 {
			p.errorf(n, t.col, "second %s=: the rule already has one", key)
			return
		}
		items := strings.Split(val, "|")
		for _, it := range items {
			if it == "" {
				p.errorf(n, t.col, "%s=%s has an empty item", key, val)
				return
			}
		}
		*list = items
		s.set(f, t.col)
	case "pcr":
		if s.pcrSeen {
			p.warnf(n, t.col, "second pcr=: the kernel keeps only the last")
		}
		v, err := kstrtoint(val)
		if err != nil || v < 0 || v >= 64 {
			p.errorf(n, t.col, "pcr=%s: want a PCR index from 0 to 63", val)
			return
		}
		s.pcrSeen = true
		r.PCR = &v
		s.set(fPCR, t.col)
	case "template":
		if r.Action != ActionMeasure {
			if r.Action == ActionNone {
				p.errorf(n, t.col, "template= before the action: the kernel accepts it only after measure")
			} else {
				p.errorf(n, t.col, "template= is only valid with the measure action, not %s", r.Action)
			}
			return
		}
		if !p.knownTemplate(val) {
			p.errorf(n, t.col, "unknown template=%s (Linux %s has %s)", val, p.v, strings.Join(Templates(p.v), ", "))
			return
		}
		if r.Template != "" {
			p.errorf(n, t.col, "second template=: the rule already has template=%s", r.Template)
			return
		}
		r.Template = val
	case "digest_type":
		if s.flags&fDigsig != 0 {
			p.errorf(n, t.col, "digest_type= must come before appraise_type=")
			return
		}
		if val != "verity" {
			p.errorf(n, t.col, "unknown digest_type=%s (want verity)", val)
			return
		}
		r.DigestVerity = true
		s.set(fVerity, t.col)
	case "appraise_type":
		s.appraiseTypeTried = true
		p.appraiseType(s, t, n, val)
	case "appraise_flag":
		if p.v >= V6_6 {
			p.warnf(n, t.col, "appraise_flag= is deprecated and ignored since Linux 6.6: signature appraisal always checks the blacklist")
			r.AppraiseFlag = val
			return
		}
		if !p.modsig(t, n, "appraise_flag=") {
			return
		}
		if !strings.Contains(val, "blacklist") {
			p.errorf(n, t.col, "unknown appraise_flag=%s (want check_blacklist)", val)
			return
		}
		r.AppraiseFlag = val
		s.set(fBlacklist, t.col)
	case "appraise_algos":
		s.algosTried = true
		if len(r.AppraiseAlgos) > 0 {
			p.errorf(n, t.col, "second appraise_algos=: the rule already has one")
			return
		}
		algos := strings.Split(val, ",")
		for _, a := range algos {
			if !p.hashAlgo(n, t, val, a) {
				return
			}
		}
		r.AppraiseAlgos = algos
		s.set(fValidateAlgos, t.col)
	}
}

func (p *parser) unknown(s *ruleState, t token, key string, op byte, n int) {
	s.unknownTok = true
	if kw, ok := keywords[key]; ok {
		if kw.ops == "" {
			p.errorf(n, t.col, "%q takes no value", key)
		} else if op == 0 {
			p.errorf(n, t.col, "%q needs a value: %s=...", key, key)
		} else {
			p.errorf(n, t.col, "%q: %s accepts only =", t.text, key)
		}
		return
	}
	switch {
	case key == "dont_audit":
		p.errorf(n, t.col, "unknown action %q (Linux %s has audit but no dont_audit)", key, p.v)
	default:
		p.errorf(n, t.col, "unknown keyword %q", t.text)
	}
}

func tokenPattern(key string, op byte) string {
	if op == 0 {
		return key
	}
	return key + string(op)
}

func (p *parser) funcList() []string {
	var out []string
	for _, f := range []string{"BPRM_CHECK", "MMAP_CHECK", "MMAP_CHECK_REQPROT", "FILE_CHECK", "CREDS_CHECK",
		"MODULE_CHECK", "FIRMWARE_CHECK", "KEXEC_KERNEL_CHECK", "KEXEC_INITRAMFS_CHECK",
		"POLICY_CHECK", "KEXEC_CMDLINE", "KEY_CHECK", "CRITICAL_DATA", "SETXATTR_CHECK"} {
		if funcValues[f].since <= p.v {
			out = append(out, f)
		}
	}
	return out
}

func (p *parser) knownTemplate(name string) bool {
	for _, t := range templates {
		if t.since <= p.v && (t.name == name || t.fmt == name) {
			return true
		}
	}
	return false
}

// hashAlgo checks one appraise_algos= name as ima_parse_appraise_algos
// does: match_string against hash_algo_name, then crypto_has_alg.
func (p *parser) hashAlgo(n int, t token, val, name string) bool {
	for _, h := range hashAlgos {
		if h.name != name || h.since > p.v {
			continue
		}
		if h.until != 0 && p.v > h.until {
			p.errorf(n, t.col, "appraise_algos=%s: Linux %s has no %s implementation (removed in 5.11)", val, p.v, name)
			return false
		}
		switch st, opt := p.cfg.hashState(name); st {
		case Disabled:
			p.errorf(n, t.col, "appraise_algos=%s: %s is not built (%s is not set)", val, name, opt)
			return false
		case Module:
			p.warnf(n, t.col, "appraise_algos=%s: %s is a module (%s=m): the kernel rejects the rule unless the module can be loaded when the policy is written", val, name, opt)
		case Unknown:
			if name != "sha1" && name != "sha256" {
				p.warnf(n, t.col, "appraise_algos=%s: the kernel rejects the rule unless %s is built in or its module can be loaded (%s)", val, name, opt)
			}
		}
		return true
	}
	p.errorf(n, t.col, "appraise_algos=%s: unknown hash algorithm %q", val, name)
	return false
}

func (p *parser) idCond(s *ruleState, t token, n int, key string, op byte, val string) {
	r := &s.r
	var slot **IDCond
	var f flag
	effective := false
	switch key {
	case "uid":
		slot, f = &r.UID, fUID
	case "euid":
		slot, f, effective = &r.UID, fEUID, true
	case "gid":
		slot, f = &r.GID, fGID
	case "egid":
		slot, f, effective = &r.GID, fEGID, true
	case "fowner":
		slot, f = &r.FOwner, fFOwner
	case "fgroup":
		slot, f = &r.FGroup, fFGroup
	}
	if *slot != nil {
		prev := "uid"
		switch {
		case key == "uid" || key == "euid":
			if (*slot).Effective {
				prev = "euid"
			}
		case key == "gid" || key == "egid":
			prev = "gid"
			if (*slot).Effective {
				prev = "egid"
			}
		default:
			prev = key
		}
		p.errorf(n, t.col, "%s%c%s: the rule already has %s (the kernel keeps one value for uid/euid and one for gid/egid)", key, op, val, prev)
		return
	}
	v, err := kstrtoul(val, 10, 64)
	if err != nil {
		p.errorf(n, t.col, "%s%c%s: %v (want a decimal id)", key, op, val, err)
		return
	}
	if v > math.MaxUint32 || v == math.MaxUint32 {
		p.errorf(n, t.col, "%s%c%s: not a valid id (want 0 to 4294967294)", key, op, val)
		return
	}
	*slot = &IDCond{Op: Op(op), ID: uint32(v), Effective: effective}
	s.set(f, t.col)
}

func (p *parser) appraiseType(s *ruleState, t token, n int, val string) {
	r := &s.r
	bl := flag(0)
	if p.v >= V6_6 {
		bl = fBlacklist // "integrity: Always reference the blacklist keyring"
	}
	var want AppraiseType
	switch val {
	case "imasig":
		if s.flags&fVerity != 0 {
			p.errorf(n, t.col, "appraise_type=imasig cannot follow digest_type=verity (use appraise_type=sigv3)")
			return
		}
		s.set(fDigsig|bl, t.col)
		want = AppraiseImaSig
	case "imasig|modsig":
		if !p.modsig(t, n, "appraise_type=imasig|modsig") {
			return
		}
		if s.flags&fVerity != 0 {
			p.errorf(n, t.col, "appraise_type=imasig|modsig cannot follow digest_type=verity")
			return
		}
		s.set(fDigsig, t.col)
		s.set(fModsig, t.col)
		if bl != 0 {
			s.set(bl, t.col)
		}
		want = AppraiseImaSigModsig
	case "sigv3":
		if p.v < V6_1 {
			p.errorf(n, t.col, "appraise_type=sigv3 is not accepted by Linux %s (added in 6.0)", p.v)
			return
		}
		if s.flags&fVerity == 0 {
			p.errorf(n, t.col, "appraise_type=sigv3 needs digest_type=verity before it")
			return
		}
		s.set(fDigsig|bl, t.col)
		want = AppraiseSigV3
	default:
		ok := "imasig or imasig|modsig"
		if p.v >= V6_1 {
			ok = "imasig, imasig|modsig or sigv3"
		}
		p.errorf(n, t.col, "unknown appraise_type=%s (want %s)", val, ok)
		return
	}
	if r.AppraiseType != AppraiseAny && r.AppraiseType != want {
		p.warnf(n, t.col, "second appraise_type=: the kernel combines appraise_type=%s and %s", r.AppraiseType, val)
	}
	// The kernel ORs the flags: modsig, once allowed, stays allowed.
	if r.AppraiseType != AppraiseImaSigModsig {
		r.AppraiseType = want
	}
	s.flagCol[fDigsig] = t.col
}

// validate mirrors ima_validate_rule of series p.v, reporting every failed
// check at the column of the token responsible.
func (p *parser) validate(s *ruleState, n int) {
	r := &s.r
	col := func(f flag) int {
		if c, ok := s.flagCol[f]; ok {
			return c
		}
		return r.Pos.Col
	}
	if r.Action == ActionNone {
		if s.unknownTok {
			return // a misspelled action was already reported
		}
		p.errorf(n, r.Pos.Col, "rule has no action (measure, dont_measure, appraise, dont_appraise, audit, hash or dont_hash)")
		return
	}
	reported := map[int]bool{}
	report := func(c int, format string, args ...any) {
		if reported[c] {
			return
		}
		reported[c] = true
		p.errorf(n, c, format, args...)
	}
	if r.Action != ActionMeasure && s.flags&fPCR != 0 {
		report(col(fPCR), "pcr= is only valid with the measure action, not %s", r.Action)
	}
	if r.Action != ActionAppraise {
		for _, f := range []flag{fDigsig, fModsig, fBlacklist, fValidateAlgos} {
			if s.flags&f != 0 {
				report(col(f), "%s is only valid with the appraise action, not %s", f.name(), r.Action)
			}
		}
	}
	ok, actions, known := allowed(p.v, r.Func)
	where := "func=" + r.Func.String()
	if r.Func == FuncNone {
		where = "a rule without func="
	}
	if !known {
		return // reported when parsing func=
	}
	if actions != 0 && r.Action&actions == 0 {
		switch actions {
		case ActionAppraise:
			report(s.actionCol, "%s only takes the appraise action, not %s", where, r.Action)
		default:
			report(s.actionCol, "%s only takes measure and dont_measure, not %s", where, r.Action)
		}
	}
	for i := 0; i < numFlags; i++ {
		f := flag(1) << i
		if s.flags&f == 0 || ok&f != 0 {
			continue
		}
		msg := fmt.Sprintf("%s is not allowed with %s", f.name(), where)
		if f == fKeyrings {
			msg = "keyrings= is only allowed with func=KEY_CHECK"
		} else if f == fLabel {
			msg = "label= is only allowed with func=CRITICAL_DATA"
		} else if f == fVerity && r.Func != FuncNone {
			msg = fmt.Sprintf("digest_type=verity is not allowed with %s", where)
		}
		if later := p.laterAllowing(r.Func, f); later != 0 {
			msg += fmt.Sprintf(" on Linux %s (allowed from %s)", p.v, later)
		}
		report(col(f), "%s", msg)
	}
	if r.Func == FuncSetxattrCheck && s.flags&fValidateAlgos == 0 && !s.algosTried {
		report(s.actionCol, "func=SETXATTR_CHECK needs appraise_algos=")
	}
	if (r.Func == FuncKeyCheck || r.Func == FuncCriticalData) && r.HasLSM() {
		for i, c := range s.lsmCol {
			if c != 0 {
				report(c, "%s= is not allowed with %s", lsmKeys[i], where)
			}
		}
	}
	if s.flags&fBlacklist != 0 {
		if p.v < V6_6 && s.flags&fModsig == 0 {
			report(col(fBlacklist), "appraise_flag=check_blacklist needs appraise_type=imasig|modsig on Linux %s", p.v)
		}
	}
	if r.Action == ActionAppraise && s.flags&fVerity != 0 && s.flags&fDigsig == 0 && !s.appraiseTypeTried {
		report(col(fVerity), "an appraise rule with digest_type=verity needs appraise_type=sigv3")
	}
}

// laterAllowing returns the first modelled series after p.v whose
// ima_validate_rule accepts flag f with func fn, or 0.
func (p *parser) laterAllowing(fn Func, f flag) Version {
	for _, v := range Versions {
		if v <= p.v {
			continue
		}
		if ok, _, known := allowed(v, fn); known && ok&f != 0 {
			return v
		}
	}
	return 0
}

// kstrtoul mirrors lib/kstrtox.c kstrtoull for base 10 or 16: an optional
// '+', for base 16 an optional "0x" prefix, digits, an optional trailing
// newline, nothing else; values past bits bits are out of range.
func kstrtoul(s string, base, bits int) (uint64, error) {
	s = strings.TrimPrefix(s, "+")
	if base == 16 && len(s) >= 3 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') && isHex(s[2]) {
		s = s[2:]
	}
	s = strings.TrimSuffix(s, "\n")
	if s == "" || strings.HasPrefix(s, "+") || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("not a number")
	}
	v, err := strconv.ParseUint(s, base, bits)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return 0, fmt.Errorf("out of range")
		}
		return 0, fmt.Errorf("not a number")
	}
	return v, nil
}

// kstrtoint mirrors kstrtoint(s, 10): an optional sign, decimal digits.
func kstrtoint(s string) (int, error) {
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	u, err := kstrtoul(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if neg {
		if u > 1<<31 {
			return 0, fmt.Errorf("out of range")
		}
		return -int(u), nil
	}
	if u > math.MaxInt32 {
		return 0, fmt.Errorf("out of range")
	}
	return int(u), nil
}

// modsig reports whether the kernel may accept what, which needs
// CONFIG_IMA_APPRAISE_MODSIG: an error if it is known to be off, a warning
// if unknown.
func (p *parser) modsig(t token, n int, what string) bool {
	switch p.cfg.Modsig {
	case Disabled:
		p.errorf(n, t.col, "%s needs CONFIG_IMA_APPRAISE_MODSIG, which this kernel lacks", what)
		return false
	case Unknown:
		p.warnf(n, t.col, "%s needs CONFIG_IMA_APPRAISE_MODSIG (off by default and in Debian's kernels)", what)
	}
	return true
}
