//! timer_wheel
