package policy

// This file holds the kernel's policy vocabulary per LTS series: the
// policy_tokens table, the func= and appraise_type= values, the template
// names and the hash algorithm names, with the series each first appears in.

// keyword is one entry of the kernel's policy_tokens table.
type keyword struct {
	since Version // first modelled series that has it
	added string  // mainline release that added it, for messages
	ops   string  // accepted operators: "" for a bare word, "=" or "=<>"
}

var keywords = map[string]keyword{
	"measure":         {V5_10, "", ""},
	"dont_measure":    {V5_10, "", ""},
	"appraise":        {V5_10, "", ""},
	"dont_appraise":   {V5_10, "", ""},
	"audit":           {V5_10, "", ""},
	"hash":            {V5_10, "", ""},
	"dont_hash":       {V5_10, "", ""},
	"permit_directio": {V5_10, "", ""},
	"obj_user":        {V5_10, "", "="},
	"obj_role":        {V5_10, "", "="},
	"obj_type":        {V5_10, "", "="},
	"subj_user":       {V5_10, "", "="},
	"subj_role":       {V5_10, "", "="},
	"subj_type":       {V5_10, "", "="},
	"func":            {V5_10, "", "="},
	"mask":            {V5_10, "", "="},
	"fsmagic":         {V5_10, "", "="},
	"fsname":          {V5_10, "", "="},
	"fsuuid":          {V5_10, "", "="},
	"uid":             {V5_10, "", "=<>"},
	"euid":            {V5_10, "", "=<>"},
	"fowner":          {V5_10, "", "=<>"},
	"gid":             {V6_1, "5.16", "=<>"},
	"egid":            {V6_1, "5.16", "=<>"},
	"fgroup":          {V6_1, "5.16", "=<>"},
	"digest_type":     {V6_1, "6.0", "="},
	"appraise_type":   {V5_10, "", "="},
	"appraise_flag":   {V5_10, "", "="},
	"appraise_algos":  {V5_15, "5.15", "="},
	"pcr":             {V5_10, "", "="},
	"template":        {V5_10, "", "="},
	"keyrings":        {V5_10, "", "="},
	"label":           {V5_15, "5.12", "="},
}

// funcValue is one accepted func= spelling.
type funcValue struct {
	f     Func
	since Version
	added string
}

// funcValues lists the spellings ima_parse_rule accepts, aliases included
// (PATH_CHECK and FILE_MMAP are kept for backward compatibility).
var funcValues = map[string]funcValue{
	"FILE_CHECK":            {FuncFileCheck, V5_10, ""},
	"PATH_CHECK":            {FuncFileCheck, V5_10, ""},
	"MODULE_CHECK":          {FuncModuleCheck, V5_10, ""},
	"FIRMWARE_CHECK":        {FuncFirmwareCheck, V5_10, ""},
	"FILE_MMAP":             {FuncMmapCheck, V5_10, ""},
	"MMAP_CHECK":            {FuncMmapCheck, V5_10, ""},
	"MMAP_CHECK_REQPROT":    {FuncMmapCheckReqprot, V6_6, "6.4"},
	"BPRM_CHECK":            {FuncBprmCheck, V5_10, ""},
	"CREDS_CHECK":           {FuncCredsCheck, V5_10, ""},
	"KEXEC_KERNEL_CHECK":    {FuncKexecKernelCheck, V5_10, ""},
	"KEXEC_INITRAMFS_CHECK": {FuncKexecInitramfsCheck, V5_10, ""},
	"POLICY_CHECK":          {FuncPolicyCheck, V5_10, ""},
	"KEXEC_CMDLINE":         {FuncKexecCmdline, V5_10, ""},
	"KEY_CHECK":             {FuncKeyCheck, V5_10, ""},
	"CRITICAL_DATA":         {FuncCriticalData, V5_15, "5.12"},
	"SETXATTR_CHECK":        {FuncSetxattrCheck, V5_15, "5.15"},
}

// templates maps each built-in template (ima_template.c builtin_templates)
// to its format and first series. lookup_template_desc accepts the name or
// the format string.
var templates = []struct {
	name, fmt string
	since     Version
	added     string
}{
	{"ima", "d|n", V5_10, ""},
	{"ima-ng", "d-ng|n-ng", V5_10, ""},
	{"ima-sig", "d-ng|n-ng|sig", V5_10, ""},
	{"ima-buf", "d-ng|n-ng|buf", V5_10, ""},
	{"ima-modsig", "d-ng|n-ng|sig|d-modsig|modsig", V5_10, ""},
	{"evm-sig", "d-ng|n-ng|evmsig|xattrnames|xattrlengths|xattrvalues|iuid|igid|imode", V5_15, "5.12"},
	{"ima-ngv2", "d-ngv2|n-ng", V6_1, "6.0"},
	{"ima-sigv2", "d-ngv2|n-ng|sig", V6_1, "6.0"},
}

// Templates returns the names of the built-in templates of series v.
func Templates(v Version) []string {
	var out []string
	for _, t := range templates {
		if t.since <= v {
			out = append(out, t.name)
		}
	}
	return out
}

// hashAlgos is crypto/hash_info.c hash_algo_name in index order; appraise_algos=
// matches names exactly, then needs crypto_has_alg. until marks the
// algorithms whose implementations were removed from the kernel in 5.11
// (rmd128/256/320, tgr*): later series always reject them.
var hashAlgos = []struct {
	name  string
	since Version
	until Version
}{
	{"md4", V5_10, 0}, {"md5", V5_10, 0}, {"sha1", V5_10, 0},
	{"rmd160", V5_10, 0}, {"sha256", V5_10, 0}, {"sha384", V5_10, 0},
	{"sha512", V5_10, 0}, {"sha224", V5_10, 0}, {"rmd128", V5_10, V5_10},
	{"rmd256", V5_10, V5_10}, {"rmd320", V5_10, V5_10}, {"wp256", V5_10, 0},
	{"wp384", V5_10, 0}, {"wp512", V5_10, 0}, {"tgr128", V5_10, V5_10},
	{"tgr160", V5_10, V5_10}, {"tgr192", V5_10, V5_10}, {"sm3", V5_10, 0},
	{"streebog256", V5_10, 0}, {"streebog512", V5_10, 0},
	{"sha3-256", V6_12, 0}, {"sha3-384", V6_12, 0}, {"sha3-512", V6_12, 0},
}

// Rule flags, named after the kernel's IMA_* rule flags. A parsed rule
// carries the set of flags its tokens set; ima_validate_rule checks that set
// against what its func= allows.
type flag uint32

const (
	fFunc flag = 1 << iota
	fMask
	fFSMagic
	fUID
	fFOwner
	fFSUUID
	fInMask
	fEUID
	fPCR
	fFSName
	fKeyrings
	fLabel
	fValidateAlgos
	fGID
	fEGID
	fFGroup
	fDigsig
	fPermitDirectio
	fModsig
	fBlacklist
	fVerity
	numFlags = iota
)

var flagNames = [numFlags]string{
	"func=", "mask=", "fsmagic=", "uid=", "fowner=", "fsuuid=", "mask=^", "euid=",
	"pcr=", "fsname=", "keyrings=", "label=", "appraise_algos=", "gid=", "egid=",
	"fgroup=", "appraise_type=", "permit_directio", "appraise_type=imasig|modsig",
	"appraise_flag=check_blacklist", "digest_type=verity",
}

func (f flag) name() string {
	for i := 0; i < numFlags; i++ {
		if f == 1<<i {
			return flagNames[i]
		}
	}
	return "?"
}

// allowed returns the flags ima_validate_rule of series v accepts with
// func fn, and the actions it accepts (0: any).
func allowed(v Version, fn Func) (flags flag, actions Action, known bool) {
	groupA := fFunc | fMask | fFSMagic | fUID | fFOwner | fFSUUID | fInMask | fEUID |
		fPCR | fFSName | fDigsig | fPermitDirectio
	if v >= V5_15 {
		groupA |= fValidateAlgos
	}
	if v >= V6_1 {
		groupA |= fGID | fEGID | fFGroup
	}
	groupB := groupA | fModsig | fBlacklist
	if v >= V6_1 {
		groupA |= fVerity
	}
	if v >= V6_6 {
		groupA |= fBlacklist
	}
	ids := flag(0)
	if v >= V6_1 {
		ids = fGID | fEGID | fFGroup
	}
	measureOnly := ActionMeasure | ActionDontMeasure
	switch fn {
	case FuncNone, FuncFileCheck, FuncMmapCheck, FuncBprmCheck, FuncCredsCheck,
		FuncPostSetattr, FuncFirmwareCheck, FuncPolicyCheck:
		return groupA, 0, true
	case FuncMmapCheckReqprot:
		return groupA, 0, v >= V6_6
	case FuncModuleCheck, FuncKexecKernelCheck, FuncKexecInitramfsCheck:
		return groupB, 0, true
	case FuncKexecCmdline:
		return fFunc | fFSMagic | fUID | fFOwner | fFSUUID | fEUID | fPCR | fFSName | ids,
			measureOnly, true
	case FuncKeyCheck:
		f := fFunc | fUID | fPCR | fKeyrings
		if v >= V6_1 {
			f |= fGID
		}
		return f, measureOnly, true
	case FuncCriticalData:
		f := fFunc | fUID | fPCR | fLabel
		if v >= V6_1 {
			f |= fGID
		}
		return f, measureOnly, v >= V5_15
	case FuncSetxattrCheck:
		return fFunc | fValidateAlgos, ActionAppraise, v >= V5_15
	}
	return 0, 0, false
}
