// One definition per IR op (runtime/layers/<op>.cpp): its name and arity, its structural
// checks, its shape rule, and its lowerings (fp32 reference, int8). The importer, infer_shapes,
// Graph::validate and the lowering passes all go through op_def(kind); adding an op means one
// OpKind and one definition here.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "graph.h"

namespace qh {

struct Program;
struct FusedGroup;

// A shape rule's refusal: what is wrong, in terms of the inputs ("input 'x' [1,5,8,8] has 5
// channels, ..."). The caller adds the model/node context.
struct ShapeError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// The inputs of a node as its shape rule sees them: shapes (NHWC / {N,K}) and value names.
struct ShapeInputs {
    std::vector<std::vector<int64_t>> shapes;
    std::vector<std::string> names;
    // "input 'x' [1,8,8,3]", for messages.
    std::string describe(int i) const;
};

struct OpDef {
    OpKind kind;
    const char *name;
    int arity;  // number of inputs; -1: one or more (Concat)
    // Structural checks beyond arity and value ids (constants present and consistent, window
    // attributes in range); returns what is wrong, "" when nothing is. Graph::validate.
    std::string (*check)(const GraphNode &n);
    // Output shape from the input shapes; throws ShapeError. Does not check the size against
    // the limits (infer_shapes does, once per value).
    std::vector<int64_t> (*shape)(const GraphNode &n, const ShapeInputs &in);
    // Program p after assign_quantization: adds the step(s) of node n on the fp32 path / of group
    // gr on the int8 path. A lowering may add no step (a Flatten that is a view).
    void (*lower_fp32)(Program &p, const GraphNode &n);
    // Quantization assignment of an int8 group (anchor's op): dtype and quant of the value it
    // writes, checks that its inputs are quantized, internal values it needs (gr.aux).
    void (*quantize)(Program &p, FusedGroup &gr);
    void (*lower_int8)(Program &p, const FusedGroup &gr);
};

const OpDef &op_def(OpKind k);

// op_def(n.op).shape over the given input shapes.
std::vector<int64_t> output_shape(const GraphNode &n, const ShapeInputs &in);

}  // namespace qh
