// Pulumi.dev.yaml through the program, against the mocks (one stack per file: mocks are per process).
import { awsStackSuite } from './aws-stack-suite';

awsStackSuite('dev', { natGateways: 1, rds: false });
