//! Non-finite numbers: a network whose weights hold NaN or infinity (training that diverged,
//! a damaged file) is refused by name instead of giving an image of NaN.

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;

/// The first parameter of `module` holding a value that is not finite: its path (`up.3.weight`)
/// and how many of its values are not finite.
pub fn non_finite_parameter<M: Module>(module: &M) -> Option<(String, usize)> {
    struct Finder {
        path: Vec<String>,
        found: Option<(String, usize)>,
    }
    impl ModuleVisitor for Finder {
        fn enter_module(&mut self, name: &str, _container_type: &str) {
            self.path.push(name.to_string());
        }

        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.path.pop();
        }

        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if self.found.is_some() {
                return;
            }
            // Read on the host: the same on every backend (a GPU's reduction of NaN is not).
            let bad = match param.val().into_data().try_to_vec::<f32>() {
                Ok(values) => values.iter().filter(|v| !v.is_finite()).count(),
                Err(_) => 0,
            };
            if bad > 0 {
                self.found = Some((self.path.iter().filter(|p| !p.is_empty()).cloned().collect::<Vec<_>>().join("."), bad));
            }
        }
    }
    let mut finder = Finder { path: Vec::new(), found: None };
    module.visit(&mut finder);
    finder.found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nan_weight_is_found_by_name() {
        let dev = Device::flex();
        let layer = burn::nn::LinearConfig::new(3, 2).init(&dev);
        assert_eq!(non_finite_parameter(&layer), None);
        let mut broken = layer.clone();
        let mut v: Vec<f32> = layer.weight.val().into_data().try_to_vec().unwrap();
        v[4] = f32::NAN;
        v[5] = f32::INFINITY;
        broken.weight = Param::from_tensor(Tensor::from_data(TensorData::new(v, [3, 2]), &dev));
        assert_eq!(non_finite_parameter(&broken), Some(("weight".to_string(), 2)));
    }
}
