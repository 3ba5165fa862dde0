package mcpserver

import (
	"github.com/getkin/kin-openapi/openapi3"
)

// maxSchemaDepth bounds the inlining of $refs (a recursive schema would
// otherwise never end); deeper levels become the empty schema, which
// accepts anything.
const maxSchemaDepth = 24

// jsonSchema turns an OpenAPI 3.0 schema (refs resolved by the loader) into
// the JSON Schema (2020-12) that MCP tool schemas are: refs inlined,
// `nullable` as a "null" type, boolean exclusive bounds as numbers, and the
// OpenAPI-only keywords (example, discriminator, xml, externalDocs, x-…)
// left out.
func jsonSchema(sr *openapi3.SchemaRef) map[string]any { return convSchema(sr, 0) }

func convSchema(sr *openapi3.SchemaRef, depth int) map[string]any {
	out := map[string]any{}
	if sr == nil || sr.Value == nil || depth > maxSchemaDepth {
		return out
	}
	s := sr.Value
	if s.Type != nil {
		types := append([]string(nil), s.Type.Slice()...)
		if s.Nullable && len(types) > 0 {
			types = append(types, "null")
		}
		if len(types) == 1 {
			out["type"] = types[0]
		} else if len(types) > 1 {
			out["type"] = types
		}
	}
	str := func(k, v string) {
		if v != "" {
			out[k] = v
		}
	}
	str("title", s.Title)
	str("format", s.Format)
	str("description", s.Description)
	str("pattern", s.Pattern)
	if len(s.Enum) > 0 {
		enum := append([]any(nil), s.Enum...)
		if s.Nullable && !containsNil(enum) {
			enum = append(enum, nil)
		}
		out["enum"] = enum
	}
	if s.Default != nil {
		out["default"] = s.Default
	}
	if s.Const != nil {
		out["const"] = s.Const
	}
	if s.ReadOnly {
		out["readOnly"] = true
	}
	if s.WriteOnly {
		out["writeOnly"] = true
	}
	if s.Deprecated {
		out["deprecated"] = true
	}
	bound := func(k, exK string, v *float64, ex openapi3.ExclusiveBound) {
		switch {
		case ex.Value != nil:
			out[exK] = *ex.Value
			if v != nil {
				out[k] = *v
			}
		case ex.Bool != nil && *ex.Bool && v != nil:
			out[exK] = *v
		case v != nil:
			out[k] = *v
		}
	}
	bound("minimum", "exclusiveMinimum", s.Min, s.ExclusiveMin)
	bound("maximum", "exclusiveMaximum", s.Max, s.ExclusiveMax)
	if s.MultipleOf != nil {
		out["multipleOf"] = *s.MultipleOf
	}
	if s.MinLength > 0 {
		out["minLength"] = s.MinLength
	}
	if s.MaxLength != nil {
		out["maxLength"] = *s.MaxLength
	}
	if s.Items != nil {
		out["items"] = convSchema(s.Items, depth+1)
	}
	if s.MinItems > 0 {
		out["minItems"] = s.MinItems
	}
	if s.MaxItems != nil {
		out["maxItems"] = *s.MaxItems
	}
	if s.UniqueItems {
		out["uniqueItems"] = true
	}
	if len(s.Properties) > 0 {
		props := map[string]any{}
		for name, p := range s.Properties {
			props[name] = convSchema(p, depth+1)
		}
		out["properties"] = props
	}
	if len(s.Required) > 0 {
		out["required"] = append([]string(nil), s.Required...)
	}
	if ap := s.AdditionalProperties; ap.Has != nil {
		out["additionalProperties"] = *ap.Has
	} else if ap.Schema != nil {
		out["additionalProperties"] = convSchema(ap.Schema, depth+1)
	}
	if s.MinProps > 0 {
		out["minProperties"] = s.MinProps
	}
	if s.MaxProps != nil {
		out["maxProperties"] = *s.MaxProps
	}
	for k, list := range map[string]openapi3.SchemaRefs{"oneOf": s.OneOf, "anyOf": s.AnyOf, "allOf": s.AllOf} {
		if len(list) == 0 {
			continue
		}
		var xs []any
		for _, x := range list {
			xs = append(xs, convSchema(x, depth+1))
		}
		out[k] = xs
	}
	if s.Not != nil {
		out["not"] = convSchema(s.Not, depth+1)
	}
	return out
}

func containsNil(xs []any) bool {
	for _, x := range xs {
		if x == nil {
			return true
		}
	}
	return false
}
