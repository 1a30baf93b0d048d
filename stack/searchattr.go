package stack

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
)

// RegisterSearchAttributes makes sure the custom search attributes attrs
// exist in namespace, adding only the missing ones through the operator
// service. Attributes already present with the same type are fine (so it can
// run on every worker start); one present with a different type is an error,
// since Temporal cannot change the type of an attribute in place.
func RegisterSearchAttributes(ctx context.Context, c client.Client, namespace string, attrs map[string]enums.IndexedValueType) error {
	if len(attrs) == 0 {
		return nil
	}
	if namespace == "" {
		return errors.New("register search attributes: namespace is empty")
	}
	for _, name := range sortedKeys(attrs) {
		t := attrs[name]
		if t == enums.INDEXED_VALUE_TYPE_UNSPECIFIED || enums.IndexedValueType_name[int32(t)] == "" {
			return fmt.Errorf("register search attributes: %s has type %d; want one of Text, Keyword, Int, Double, Bool, Datetime, KeywordList", name, t)
		}
	}
	ops := c.OperatorService()
	list, err := ops.ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("register search attributes: list in namespace %q: %w", namespace, err)
	}
	missing := map[string]enums.IndexedValueType{}
	for _, name := range sortedKeys(attrs) {
		want := attrs[name]
		have, ok := list.GetCustomAttributes()[name]
		if !ok {
			have, ok = list.GetSystemAttributes()[name]
		}
		if !ok {
			missing[name] = want
			continue
		}
		if have != want {
			return fmt.Errorf("register search attributes: %s in namespace %q is %s, want %s: %w",
				name, namespace, have, want, ErrSearchAttributeType)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = ops.AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{
		Namespace:        namespace,
		SearchAttributes: missing,
	})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		// AlreadyExists means another worker added them between our list
		// and add; the result is what we wanted.
		return fmt.Errorf("register search attributes %s in namespace %q: %w",
			strings.Join(sortedKeys(missing), ", "), namespace, err)
	}
	return nil
}

// ErrSearchAttributeType is wrapped when an attribute already exists with
// another type; Temporal cannot change it in place.
var ErrSearchAttributeType = errors.New("search attribute exists with another type")

func sortedKeys(m map[string]enums.IndexedValueType) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
