package main

// examples are shown at the end of each command's --help and in its manual
// page, by command path. Every command that runs something has some
// (TestEveryCommandHasExamples); they use the file names of docs/ and the
// README's quick start.
var examples = map[string]string{
	"build": `imaforge build firmware.yaml
imaforge build firmware.yaml --json --quiet > summary.json
imaforge build firmware.yaml --signatures response.json   # after an offline ceremony
imaforge build firmware.yaml --cache ~/.cache/imaforge     # reuse signatures and compressed blocks`,
	"verify": `imaforge verify out/firmware.sqsh --root pki/root/root.pem --intermediate pki/owner/owner-ca.pem
imaforge verify out/firmware.sqsh --cert keys/ima.pem --json
imaforge verify out/firmware.sqsh --trust-manifest firmware.yaml --record out/firmware.sqsh.record.json`,
	"plan": `imaforge plan firmware.yaml -o request.json
imaforge plan firmware.yaml -o request.json --json > plan-summary.json`,
	"ceremony sign": `IMAFORGE_PIN=... imaforge ceremony sign request.json --relic-config relic.yaml --pin-env IMAFORGE_PIN -o response.json`,
	"ceremony audit verify": `imaforge ceremony audit verify response.audit.jsonl
imaforge ceremony audit verify --json response.audit.jsonl`,
	"ceremony show": `imaforge ceremony show --summary request.json
imaforge ceremony show --json request.json | jq '.files'`,
	"ceremony verify": `imaforge ceremony verify request.json response.json
imaforge ceremony verify --json request.json response.json`,
	"ceremony tokens": `imaforge ceremony tokens --module /usr/lib/softhsm/libsofthsm2.so
imaforge ceremony tokens --relic-config relic.yaml
imaforge ceremony tokens --json --module /usr/lib/softhsm/libsofthsm2.so`,
	"attest policy": `imaforge attest policy --image out/firmware.sqsh.record.json=/ --cert pki/app/app.pem --out reference.json --keylime runtime-policy.json`,
	"attest verify": `imaforge attest verify ascii_runtime_measurements --reference reference.json --quote quote.msg --quote-sig quote.sig --ak ak.pem --nonce "$NONCE"`,
	"completion": `source <(imaforge completion bash)
imaforge completion fish > ~/.config/fish/completions/imaforge.fish`,
	"file sign": `imaforge file sign --key ima.key --cert ima.pem --sigfile bin/app
imaforge file sign --key ima.key --cert ima.pem --xattr --hash sha512 rootfs/usr/bin/*`,
	"file verify": `imaforge file verify --cert ima.pem --sigfile bin/app
imaforge file verify --cert ima.pem --xattr -v rootfs/usr/bin/*`,
	"init": `imaforge init myproduct
imaforge init                          # in the current directory`,
	"manifest check": `imaforge manifest check firmware.yaml
imaforge manifest check --walk --strict firmware.yaml
imaforge manifest check --keys firmware.yaml`,
	"manifest ls": `imaforge manifest ls -v firmware.yaml
imaforge manifest ls --keys firmware.yaml   # which rule and key sign each file`,
	"manifest schema": `imaforge manifest schema > manifest.schema.json`,
	"pki init":        `IMAFORGE_PASS=... imaforge pki init --name "ACME Manufacturing" --out pki/root --passphrase-env IMAFORGE_PASS`,
	"pki issue": `imaforge pki issue --ca pki/root/root.pem --ca-key pki/root/root.key --role owner-ca --name "ACME Owner" --out pki/owner
imaforge pki issue --ca pki/owner/owner-ca.pem --ca-key pki/owner/owner-ca.key --role ima --name app --scope '/opt/app/**' --out pki/app
imaforge pki issue --ca pki/owner/owner-ca.pem --ca-key pki/owner/owner-ca.key --role ima --csr app.csr --scope '/opt/app/**' --not-after 2027-06-30T00:00:00Z --out pki/app`,
	"pki list": `imaforge pki list --ca pki/owner/owner-ca.pem
imaforge pki list --ca pki/owner/owner-ca.pem --json`,
	"pki revoke": `imaforge pki revoke --ca pki/owner/owner-ca.pem --ca-key pki/owner/owner-ca.key --cert pki/app/app.pem`,
	"pki crl":    `imaforge pki crl --ca pki/owner/owner-ca.pem --ca-key pki/owner/owner-ca.key`,
	"pki export": `imaforge pki export --root pki/root/root.pem --intermediate pki/owner/owner-ca.pem --cert pki/app/app.pem --out keyring/`,
	"pki verify": `imaforge pki verify pki/app/app.pem --root pki/root/root.pem --intermediate pki/owner/owner-ca.pem --path /opt/app/bin/app
imaforge pki verify pki/app/app.pem --root pki/root/root.pem --crl pki/root/root.crl --json`,
	"policy fmt": `cat /sys/kernel/security/ima/policy > running; imaforge policy fmt running`,
	"policy lint": `imaforge policy lint ima-policy --kernel 6.1
imaforge policy lint --json ima-policy`,
	"policy sign":   `imaforge policy sign --key ima.key --cert ima.pem ima-policy`,
	"policy verify": `imaforge policy verify --cert ima.pem ima-policy`,
	"rauc bundle":   `imaforge rauc bundle --compatible "ACME Box" --version 2.1 -o out/update.raucb firmware.yaml`,
	"rauc verify":   `imaforge rauc verify out/update.raucb --root pki/root/root.pem`,
	"serve": `imaforge-serve serve --test /etc/imaforge/service.yaml   # check the configuration, open the tokens
imaforge-serve serve /etc/imaforge/service.yaml             # bin/imaforge-serve: the build with the service`,
	"squashfs pack": `imaforge squashfs pack rootfs/ out/rootfs.sqsh --comp zstd --epoch 1700000000 --all-root`,
	"squashfs ls":   `imaforge squashfs ls -l --xattrs out/firmware.sqsh`,
	"version":       `imaforge version`,
}
