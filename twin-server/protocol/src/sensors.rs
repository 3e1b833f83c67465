//! Slot for the SensorThings types (Thing, Location, Datastream, Sensor, ObservedProperty,
//! Observation) of the sensors module. Empty until that module lands.
