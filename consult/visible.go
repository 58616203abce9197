package consult

import "strings"

// InvisibleError refuses text holding characters that change how the text
// around them is shown without being seen themselves: a name or file name
// with a right-to-left override can read "Dr Smith" or "report.pdf" while
// being something else.
type InvisibleError struct{ Field string }

func (e *InvisibleError) Error() string {
	return "the " + e.Field + " contains invisible formatting characters (such as right-to-left overrides or direction marks) that can disguise what it says; type it again without them"
}

// Is makes an InvisibleError an ErrBadInput.
func (e *InvisibleError) Is(target error) bool { return target == ErrBadInput }

// invisible reports the characters refused in names, titles and file
// names: the bidirectional embeddings, overrides and isolates
// (U+202A-U+202E, U+2066-U+2069), the direction marks (U+200E, U+200F,
// U+061C), zero-width spaces and joiners that are not part of a script
// (U+200B, U+2060, U+FEFF), and the line and paragraph separators
// (U+2028, U+2029). U+200C and U+200D stay allowed: Persian, Indic scripts
// and emoji sequences need them.
func invisible(r rune) bool {
	switch {
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x200e, r == 0x200f, r == 0x061c, r == 0x200b, r == 0x2060, r == 0xfeff, r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// checkVisible refuses s when it holds an invisible character; field names
// it in the message.
func checkVisible(field, s string) error {
	if strings.IndexFunc(s, invisible) >= 0 {
		return &InvisibleError{Field: field}
	}
	return nil
}
