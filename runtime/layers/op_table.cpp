// The op table: OpKind -> its definition (runtime/layers/<op>.cpp), and the shape rule entry
// point the importer and infer_shapes share.
#include "layers.h"

namespace qh {

std::string ShapeInputs::describe(int i) const { return "input '" + names.at(i) + "' " + shape_str(shapes.at(i)); }

const OpDef &op_def(OpKind k) {
    switch (k) {
    case OpKind::Conv: return layers::conv;
    case OpKind::Dense: return layers::dense;
    case OpKind::BatchNorm: return layers::batchnorm;
    case OpKind::Relu: return layers::relu;
    case OpKind::Add: return layers::add;
    case OpKind::MaxPool: return layers::maxpool;
    case OpKind::AvgPool: return layers::avgpool;
    case OpKind::Sigmoid: return layers::sigmoid;
    case OpKind::HardSigmoid: return layers::hard_sigmoid;
    case OpKind::HardSwish: return layers::hard_swish;
    case OpKind::Mul: return layers::mul;
    case OpKind::Concat: return layers::concat;
    case OpKind::GlobalMaxPool: return layers::global_maxpool;
    case OpKind::Softmax: return layers::softmax;
    case OpKind::GlobalAvgPool: return layers::global_avgpool;
    case OpKind::Flatten: return layers::flatten;
    case OpKind::Clip: return layers::clip;
    case OpKind::Pad: return layers::pad;
    case OpKind::QuantizeLinear: return layers::quantize_linear;
    case OpKind::DequantizeLinear: return layers::dequantize_linear;
    }
    throw std::invalid_argument("op_def: OpKind " + std::to_string(int(k)) + " has no definition");
}

std::vector<int64_t> output_shape(const GraphNode &n, const ShapeInputs &in) {
    const OpDef &d = op_def(n.op);
    if ((d.arity >= 0 ? int(in.shapes.size()) != d.arity : in.shapes.empty()) || in.names.size() != in.shapes.size())
        throw ShapeError(std::string(d.name) + " expects " + std::to_string(d.arity) + " input shape(s), has " +
                         std::to_string(in.shapes.size()));
    return d.shape(n, in);
}

}  // namespace qh
