package ivr

import (
	"cmp"
	"errors"
	"slices"

	"go.yaml.in/yaml/v3"

	"ivrd/configs"
)

// Sentinel errors a caller of Run can branch on.
var (
	// ErrTooManyVisits ends a call whose flow entered more nodes than
	// RunnerConfig.MaxVisits without ending: a loop that needs no input.
	ErrTooManyVisits = errors.New("too many node visits")
	// ErrNotValidated is returned by NewRunner for a flow that has not
	// passed Validate.
	ErrNotValidated = errors.New("flow not validated")
)

// keyError builds a configs.KeyError for the key at path.
func keyError(file string, root *yaml.Node, path []string, format string, args ...any) error {
	return configs.Errorf(file, root, path, format, args...)
}

// joinSorted joins errors in the order of the lines they point at, so a
// long report reads top to bottom like the file; nil when errs is empty.
func joinSorted(errs []error) error {
	slices.SortStableFunc(errs, func(a, b error) int {
		return cmp.Compare(lineOf(a), lineOf(b))
	})
	return errors.Join(errs...)
}

func lineOf(err error) int {
	var ke *configs.KeyError
	if errors.As(err, &ke) {
		return ke.Line
	}
	return 0
}
