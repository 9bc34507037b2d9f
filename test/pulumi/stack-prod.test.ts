// Pulumi.prod.yaml through the program, against the mocks (one stack per file: mocks are per process).
import { awsStackSuite } from './aws-stack-suite';

awsStackSuite('prod', { natGateways: 3, rds: true });
