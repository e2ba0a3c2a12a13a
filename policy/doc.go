// Package policy knows the Linux kernel's IMA policy language: it parses
// and lints policy rules exactly as the kernel's
// security/integrity/ima/ima_policy.c does (ima_parse_add_rule,
// ima_parse_rule with its policy_tokens table, ima_validate_rule) for the
// LTS series 5.10, 5.15, 6.1, 6.6 and 6.12; renders signed policy
// fragments from a manifest (written rules, presets, generate options);
// signs and verifies them with package signer; and answers, as
// ima_match_policy does, whether and how an access is appraised.
//
// A policy is text: one rule per line, "action [condition ...] [option
// ...]", for example
//
//	appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig
//
// Lines whose first non-blank character is '#' and blank lines are skipped.
// The kernel rejects a whole policy write if one rule fails; [Lint] reports
// every such problem as file:line:col, with the column of the offending
// word. The reference for the grammar and for what each series accepts is
// docs/policy.md; testdata/policy holds the kernel's built-in policies, the
// examples of Documentation/ABI/testing/ima_policy, a corpus of broken rules
// and the verdicts a real kernel gave for 188 rules.
package policy
